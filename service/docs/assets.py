"""The API docs pages' scripts, styles and icon, from an installed package: no CDN, so the pages
work on a machine with no network. Swagger UI 5 and ReDoc 2 both render OpenAPI 3.1."""

from pathlib import Path

from openapi_ui_bundles import redoc, swagger_ui

ASSETS_PATH = "/docs/assets"
ASSETS: dict[str, Path] = {
    "swagger-ui-bundle.js": swagger_ui.static_path / "swagger-ui-bundle.js",
    "swagger-ui.css": swagger_ui.static_path / "swagger-ui.css",
    "favicon.png": swagger_ui.static_path / "favicon-32x32.png",
    "redoc.standalone.js": redoc.static_path / "redoc.standalone.js",
}


def asset_url(name: str) -> str:
    return f"{ASSETS_PATH}/{name}"
