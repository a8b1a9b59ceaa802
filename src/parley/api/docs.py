"""``/docs``: Swagger UI served from the ``swagger-ui-bundle-v2`` wheel, never a CDN.

FastAPI's own page loads Swagger UI from jsDelivr, which fails offline and would need the
CDN in the page's Content-Security-Policy. Here the bundle's files are served from
``/docs/assets/`` and the page has no inline script (its initializer is a file too), so the
policy (``api/middleware.py``) allows this origin's scripts and nothing else.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
INIT_PATH = "/docs/init.js"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({{
  url: {openapi_url},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
"""


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Add ``/docs``, its initializer and the bundle's assets to ``app``."""
    page = _PAGE.format(title=app.title, assets=ASSETS_PATH, init=INIT_PATH).encode()
    init = _INIT.format(openapi_url=json.dumps(openapi_url)).encode()

    async def docs(_: Request) -> Response:
        return HTMLResponse(page)

    async def initializer(_: Request) -> Response:
        return Response(init, media_type="text/javascript")

    app.add_route(DOCS_PATH, docs, include_in_schema=False)
    app.add_route(INIT_PATH, initializer, include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
