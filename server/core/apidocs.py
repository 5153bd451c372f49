"""``/docs``: Swagger UI from the packaged ``swagger-ui-bundle-v2`` assets, under the pages' CSP.

FastAPI's default page loads Swagger UI from a CDN and starts it with an inline script, so it fails
offline and cannot run under ``script-src 'self'``. Here the page, the two assets and the small
start script are served from this origin, by a fixed list of names (no path reaches the disk), with
the same Content-Security-Policy as the web pages (issue 12).
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from server.core.errors import NotFound

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
ASSET_DIR = Path(str(swagger_ui_bundle.swagger_ui_path))
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
START_SCRIPT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CSAW-M private leaderboard - API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=_HEADERS)


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> Response:
    headers = {**_HEADERS, "Cache-Control": "public, max-age=3600"}
    if name == "start.js":
        return Response(START_SCRIPT, media_type="text/javascript; charset=utf-8", headers=headers)
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(ASSET_DIR / name, media_type=media_type, headers=headers)
