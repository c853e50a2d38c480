"""The API description and its two readers, Swagger UI at /docs and ReDoc at /redoc, served
with their assets from this service."""

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from service.docs.assets import ASSETS, ASSETS_PATH, asset_url
from service.docs.dependencies import docs_reader
from service.errors import NotFound
from service.http.files import WholeFileResponse

OPENAPI_PATH = "/openapi.json"
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)
"""The pages load nothing from elsewhere (ReDoc's bundle would fetch Redocly's logo from a CDN);
their inline start-up script and styles, and ReDoc's search worker, run."""

router = APIRouter(include_in_schema=False, dependencies=[Depends(docs_reader)])


@router.get(OPENAPI_PATH)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


def _from_here_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = DOCS_POLICY
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=asset_url("swagger-ui-bundle.js"),
        swagger_css_url=asset_url("swagger-ui.css"),
        swagger_favicon_url=asset_url("favicon.png"),
        # Swagger UI would otherwise send the description's address to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _from_here_only(page)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=OPENAPI_PATH,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=asset_url("redoc.standalone.js"),
        redoc_favicon_url=asset_url("favicon.png"),
        with_google_fonts=False,
    )
    return _from_here_only(page)


@router.get(f"{ASSETS_PATH}/{{name}}")
async def asset(name: str) -> WholeFileResponse:
    if name not in ASSETS:
        raise NotFound(f"no docs asset {name!r}")
    return WholeFileResponse(ASSETS[name])
