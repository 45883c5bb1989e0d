"""GET /: the live page (infer/server/static/): webcam or video file -> WS /v1/stream -> translation, side by side.

Three files shipped in the package (HTML, JS, CSS), read once; no external scripts, fonts or
styles, and a Content-Security-Policy that allows none, so the page works offline.
"""
from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from infer.server.endpoints import Service

FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
         "style.css": "text/css; charset=utf-8"}
# Same origin only: scripts, styles, the WebSocket; images from blob: URLs; the camera stream.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; form-action 'none'")


def _read(name: str) -> bytes:
    return (resources.files("infer.server") / "static" / name).read_bytes()


def add_page(app: FastAPI, service: Service) -> None:
    """GET / (the page) and GET /static/<file> (its script and style)."""
    files = {name: _read(name) for name in FILES}
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    async def page() -> Response:
        return Response(files["index.html"], media_type=FILES["index.html"], headers=headers)

    async def static(name: str) -> Response:
        if name not in files or name == "index.html":
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return Response(files[name], media_type=FILES[name], headers=headers)

    app.get("/", include_in_schema=False)(page)
    app.get("/static/{name}", include_in_schema=False)(static)
