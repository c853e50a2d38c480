"""The browser app: one page and its static files, all inside the package (no build step, nothing
from another host), and the choice `GET /` makes between that page and a JSON greeting."""

import asyncio
import os
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from service import __version__
from service.config import Settings
from service.http.files import WholeFileResponse
from service.processing.transcription import transcription_languages
from service.web.schemas import ServiceGreeting

PAGE = Path(__file__).parent / "index.html"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/web"
PAGE_POLICY = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
"""Scripts, styles, images, media and requests from this origin only; no inline script or style,
no plugins, no <base> rewriting, no forms posting elsewhere, no framing."""
REVALIDATE = "no-cache"
"""The page and its files may be kept, but are checked (ETag, Last-Modified) before each use, so
that an upgrade of the service is seen at once."""


class AppFiles(StaticFiles):
    """The page's scripts, styles and icon, sent whole, each revalidated before use rather than never stored."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        headers = {"cache-control": REVALIDATE}
        response = WholeFileResponse(full_path, status_code=status_code, headers=headers, stat_result=stat_result)
        return self.revalidated(response, Headers(scope=scope))

    def revalidated(self, response: WholeFileResponse, request_headers: Headers) -> Response:
        """304 with no body when the client's copy (If-None-Match, If-Modified-Since) is current. A
        browser updates its copy's headers from a 304's, so the page's content policy is sent again:
        without it, the service's API policy (`default-src 'none'`) would replace it and block the app."""
        if not self.is_not_modified(response.headers, request_headers):
            return response
        not_modified = NotModifiedResponse(response.headers)
        if policy := response.headers.get("content-security-policy"):
            not_modified.headers["content-security-policy"] = policy
        return not_modified


APP_FILES = AppFiles(directory=STATIC_DIR)
"""The app's files, mounted under STATIC_PATH; the page is revalidated by the same rules."""


def wants_page(accept: str) -> bool:
    """True when the client names text/html and prefers it to JSON, as a browser opening the address
    does; `*/*` alone (curl, most HTTP libraries) and `application/json` get the JSON greeting."""
    quality = _qualities(accept)
    return quality.get("text/html", 0.0) > 0.0 and quality["text/html"] >= quality.get("application/json", 0.0)


def _qualities(accept: str) -> dict[str, float]:
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        qualities[media_type.lower()] = _quality(parameters)
    return qualities


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


async def page(request_headers: Headers) -> Response:
    headers = {"content-security-policy": PAGE_POLICY, "cache-control": REVALIDATE, "vary": "Accept"}
    stat_result = await asyncio.to_thread(os.stat, PAGE)
    response = WholeFileResponse(PAGE, media_type="text/html", headers=headers, stat_result=stat_result)
    return APP_FILES.revalidated(response, request_headers)


async def greeting(settings: Settings) -> ServiceGreeting:
    languages = await asyncio.to_thread(transcription_languages, settings.whisper_model)
    return ServiceGreeting(
        message="Video Analyzer API is running",
        multi_language_support=len(languages) > 1,
        supported_languages=list(languages),
        version=__version__,
        app="/",
        docs="/docs",
    )
