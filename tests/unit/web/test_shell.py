"""The HTML shell names exactly the modules the app imports up front (so the browser fetches
them in parallel, not one level of imports at a time) and none it loads on demand (the
settings and signed-out pages, the dialogs, WebAuthn), and draws its boot line before any
script runs."""

from __future__ import annotations

import re

from parley.api.web import WEB_ROOT, WebAssets

_IMPORT = re.compile(r'^\s*(?:import|export)\b[^"\'`;]*?from\s+"([^"]+)"', re.MULTILINE)
_BARE_IMPORT = re.compile(r'^\s*import\s+"([^"]+)"', re.MULTILINE)


def _static_imports(name: str, seen: set[str]) -> set[str]:
    """``name`` and every module it imports statically, transitively (paths under web/)."""
    if name in seen:
        return seen
    seen.add(name)
    source = (WEB_ROOT / name).read_text()
    for target in _IMPORT.findall(source) + _BARE_IMPORT.findall(source):
        resolved = (WEB_ROOT / name).parent.joinpath(target).resolve()
        _static_imports(resolved.relative_to(WEB_ROOT).as_posix(), seen)
    return seen


def test_the_shell_preloads_exactly_the_modules_imported_up_front() -> None:
    assets = WebAssets.load()
    shell = assets.shell().decode()
    preloaded = set(re.findall(rf'rel="modulepreload" href="{assets.prefix}/([^"]+)"', shell))
    wanted = _static_imports("app/main.js", set()) - {"app/main.js"}
    assert preloaded == wanted, f"not preloaded: {sorted(wanted - preloaded)}, "
    f"not imported up front: {sorted(preloaded - wanted)}"
    on_demand = {
        "vendor/highlight.js",
        "vendor/katex.js",
        "app/components/SettingsPage.js",
        "app/components/LoginPage.js",
        "app/components/ShareDialog.js",
        "app/components/ConversationSettings.js",
        "app/api/passkeys.js",
    }
    assert not preloaded & on_demand  # loaded with import() when first needed
    for name in preloaded:
        assert name in assets.files, name


def test_the_boot_line_is_in_the_page_itself() -> None:
    shell = WebAssets.load().shell().decode()
    assert '<div id="app"><p class="boot" role="status">Loading…</p></div>' in shell
