"""The browser app's routes: the HTML shell on the UI's paths, and its files under one
content-hashed prefix.

Only the paths below serve the shell, so every other unknown path still answers the API's
JSON 404. The files under ``src/parley/web/`` are read once, when the app is built (about
0.5 MB, most of it highlight.js and KaTeX that the page loads only on demand), and each is
compressed the first time a browser asks for it. Their combined hash names the prefix, so
a file is cached forever (``immutable``) and a new release is a new prefix. The shell
itself is ``no-cache``: it is the one file that says which prefix is current.

The pages carry their own Content-Security-Policy (scripts and styles from this origin only,
no inline code, no eval), which the request envelope leaves in place.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
STATIC_PREFIX = "/static"

# The pages' policy: nothing from another origin, no inline script or style, no eval.
# ``img-src data: blob:`` for pasted images and the TOTP QR code; ``connect-src 'self'`` covers
# fetch, SSE and the same-origin WebSocket.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}
# Worth compressing; fonts and images already are.
_COMPRESSIBLE = {".js", ".css", ".svg", ".json", ".webmanifest"}
_MIN_COMPRESS = 512

# A module's static imports (``import ... from "x"``, ``export ... from "x"``, ``import "x"``);
# a dynamic ``import("x")`` is not one: that module loads when it is needed.
_STATIC_IMPORT = re.compile(
    r'^\s*(?:(?:import|export)\b[^"\'`;]*?from\s*|import\s*)"([^"]+)"', re.MULTILINE
)
ENTRY = "app/main.js"

# The browser app's own paths (each answers the same shell; the app routes on the client).
PAGES = (
    "/",
    "/login",
    "/register",
    "/settings",
    "/forgot-password",
    "/reset-password",  # the reset link's token rides in the fragment, never sent here
    "/verify-email",
    "/c/{conversation_id}",
    "/s/{token}",
    "/manage",  # the admin console (its modules load only when it is opened)
    "/manage/{section}",
)


@dataclass(slots=True)
class Asset:
    body: bytes
    content_type: str
    compressible: bool
    _gzipped: bytes | None = None

    def gzipped(self) -> bytes | None:
        """The body gzipped (made on first use, then kept), or None when not worth it."""
        if not self.compressible:
            return None
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        return self._gzipped


@dataclass(slots=True)
class WebAssets:
    """Every servable file under ``root``, keyed by its path relative to it."""

    files: dict[str, Asset] = field(default_factory=dict)
    version: str = ""

    @classmethod
    def load(cls, root: Path = WEB_ROOT) -> WebAssets:
        files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            kind = _TYPES.get(path.suffix)
            if kind is None or not path.is_file():
                continue  # VENDORED.md, licences, editor files: not served
            name = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(name.encode() + b"\0" + body + b"\0")
            compressible = path.suffix in _COMPRESSIBLE and len(body) >= _MIN_COMPRESS
            files[name] = Asset(body, kind, compressible)
        return cls(files, digest.hexdigest()[:16])

    @property
    def prefix(self) -> str:
        return f"{STATIC_PREFIX}/{self.version}"

    def static_imports(self, entry: str = ENTRY) -> set[str]:
        """``entry`` and every module it imports statically, transitively: what the page
        cannot run without. Modules imported with ``import()`` (highlight.js, KaTeX, the
        settings and signed-out pages, dialogs) are left out, as the browser leaves them."""
        seen: set[str] = set()
        todo = [entry]
        while todo:
            name = todo.pop()
            asset = self.files.get(name)
            if name in seen or asset is None:
                continue
            seen.add(name)
            if name.startswith("app/"):  # the vendored bundles import nothing
                here = posixpath.dirname(name)
                for target in _STATIC_IMPORT.findall(asset.body.decode()):
                    todo.append(posixpath.normpath(posixpath.join(here, target)))
        return seen

    def preloads(self) -> list[str]:
        """Every module the entry imports up front, itself aside. Named in the shell, they
        are fetched at once, in parallel, instead of one level of imports after another;
        none that loads on demand is named, so the chat page fetches no more than it runs."""
        return sorted(self.static_imports() - {ENTRY})

    def shell(self) -> bytes:
        """The one HTML page every UI path answers; the app reads the path and routes.
        The boot line is in the page itself, so something is drawn as soon as the
        stylesheet is in, before any script has run (the app replaces it)."""
        p = self.prefix
        preloads = "".join(f'<link rel="modulepreload" href="{p}/{n}">' for n in self.preloads())
        return (
            "<!doctype html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            "<title>Parley</title>"
            f'<link rel="icon" href="{p}/app/icon.svg" type="image/svg+xml">'
            f'<link rel="stylesheet" href="{p}/app/app.css">'
            f'<script type="module" src="{p}/app/main.js"></script>'
            f"{preloads}"
            '</head><body><div id="app"><p class="boot" role="status">Loading…</p></div>'
            "<noscript>Parley's web app needs JavaScript.</noscript>"
            "</body></html>\n"
        ).encode()


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "")


def build_router(assets: WebAssets) -> APIRouter:
    """Routes bound to one set of assets (built with the app, so tests can point elsewhere)."""
    router = APIRouter(include_in_schema=False)
    shell = assets.shell()
    shell_gz = gzip.compress(shell, compresslevel=9, mtime=0)
    page_headers = {
        "cache-control": "no-cache",
        "content-security-policy": PAGE_CSP,
        "vary": "accept-encoding",
    }

    async def page(request: Request) -> Response:
        if _accepts_gzip(request):
            return Response(
                shell_gz,
                media_type="text/html; charset=utf-8",
                headers={**page_headers, "content-encoding": "gzip"},
            )
        return Response(shell, media_type="text/html; charset=utf-8", headers=page_headers)

    for path in PAGES:
        router.add_api_route(path, page, methods=["GET", "HEAD"])

    @router.get(STATIC_PREFIX + "/{version}/{name:path}")
    async def static(version: str, name: str, request: Request) -> Response:
        asset = assets.files.get(name)
        if asset is None:
            return Response(
                b'{"error":{"message":"no such file","type":"not_found_error","param":null,'
                b'"code":"not_found"}}',
                status_code=404,
                media_type="application/json",
            )
        # A page loaded before an upgrade may still ask for the old prefix: it gets today's
        # file, not cached, rather than a broken page.
        cache = "public, max-age=31536000, immutable" if version == assets.version else "no-cache"
        headers = {"cache-control": cache, "vary": "accept-encoding"}
        gzipped = asset.gzipped() if _accepts_gzip(request) else None
        if gzipped is not None:
            headers["content-encoding"] = "gzip"
            return Response(gzipped, media_type=asset.content_type, headers=headers)
        return Response(asset.body, media_type=asset.content_type, headers=headers)

    return router
