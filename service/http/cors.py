"""Cross-origin requests from browsers (CORS), for pages served from another origin than the API's.

Starlette's CORSMiddleware does the work. It sits outside the body limits and the application, so
that every answer carries the CORS headers: errors (401, 404, 413, 408, 500) as well as successes.
Without them a browser hides the answer from the page, which sees only "Failed to fetch", even
when the request was carried out. Credentials travel in headers (`Authorization`, `X-API-Key`), not
cookies, so no cookie is ever allowed across origins. A page from a named origin may reach the
service on a private address (Chrome's Private Network Access asks first): naming it says so.
"""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from service.config import Settings
from service.observability.correlation import REQUEST_ID_HEADER
from service.users.dependencies import API_KEY_HEADER

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    API_KEY_HEADER,
    "Content-Type",
    "Range",
    "If-Range",
    "Last-Event-ID",
    REQUEST_ID_HEADER,
)
EXPOSED_HEADERS = (
    "Accept-Ranges",
    "Content-Disposition",
    "Content-Length",
    "Content-Range",
    "ETag",
    "Retry-After",
    "WWW-Authenticate",
    REQUEST_ID_HEADER,
)
"""Headers a page may read from an answer: media ranges, transcript file names, retry waits, the
request id that finds the request in the log."""
PREFLIGHT_MAX_AGE_SECONDS = 600
CORS_HEADERS = ("access-control-", "vary")


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as every other error: `{"detail": ...}`."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refusal = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {name: value for name, value in response.headers.items() if name.startswith(CORS_HEADERS)}
        detail = f"cross-origin request refused (see CORS_ORIGINS): disallowed {refusal}"
        return JSONResponse({"detail": detail}, status_code=response.status_code, headers=headers)


def with_cors(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` answering the origins in CORS_ORIGINS; `app` itself when there are none."""
    if not settings.cors_origin_list:
        return app
    return JsonCORSMiddleware(
        app,
        allow_origins=settings.cors_origin_list,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        allow_private_network=True,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
