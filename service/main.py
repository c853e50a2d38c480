"""create_app(settings): the FastAPI application, its store, its workers and its error answers."""

import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import DocumentTooLarge, WriteError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

from service import __version__
from service.ai.retrieval import IndexCache
from service.ai.router import router as ai_router
from service.ai.service import create_language_model
from service.chat.router import router as chat_router
from service.config import Settings
from service.context import AppContext
from service.db.durable import StoreWriteFailed
from service.db.service import connect
from service.docs.router import router as docs_router
from service.errors import DocumentFull, InvalidInput, ServiceError, describe_validation_errors
from service.health.router import router as health_router
from service.http.cors import with_cors
from service.http.headers import SecurityHeaders
from service.http.limits import BodyLimits
from service.legacy.router import router as legacy_router
from service.media.router import router as media_router
from service.observability.correlation import internal_error_detail
from service.observability.requests import ObservedRequests
from service.observability.router import router as observability_router
from service.openai_api.router import router as openai_router
from service.openai_api.service import error_answer_for
from service.openapi import describe_errors
from service.processing import queue
from service.processing.router import router as processing_router
from service.processing.worker import WorkerPool
from service.search.router import router as search_router
from service.stats.router import router as stats_router
from service.storage.service import open_storage
from service.users.router import router as users_router
from service.videos.router import router as videos_router
from service.web.router import router as web_router
from service.web.service import APP_FILES, STATIC_PATH
from service.webhooks import delivery
from service.webhooks.router import router as webhooks_router

logger = logging.getLogger(__name__)

DOCUMENT_TOO_LARGE_CODES = {10334, 17419}
"""MongoDB's codes for a document past 16 MiB: BSONObjectTooLarge, and an update's result too large."""
BAD_VALUE = 2
INSERT_TOO_LARGE = "object to insert too large"
"""MongoDB refuses an insert past 16 MiB with code 2 (BadValue) and this message; pymongo lets
through a document up to 16 KiB past the limit, so the server's refusal is what arrives."""
UPLOAD_PATHS = ("/videos", "/upload-video/", "/v1/audio/transcriptions", "/v1/audio/translations")
"""The routes that stream a multipart upload (service/videos/upload.py); every other body is small."""


class VideoAnalyzerApp(FastAPI):
    """FastAPI with the HTTP protections outside its whole middleware stack, its 500 handler
    included, so that they see each request first and each answer last: CORS outside the body
    limits, so that their refusals reach a page too, the security headers outside CORS, on
    preflight answers as well, and request ids and metrics outermost, around every answer."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def build_middleware_stack(self) -> ASGIApp:
        limited = BodyLimits(super().build_middleware_stack(), self.settings, UPLOAD_PATHS)
        return ObservedRequests(SecurityHeaders(with_cors(limited, self.settings)))


def _error(request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return error_answer_for(request.url.path, status_code, detail, headers)


async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
    return _error(request, error.status_code, error.detail, error.headers)


async def _request_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable string; FastAPI's default list echoes the input, which may not even
    be writable as JSON (NaN, a lone surrogate, 1e400)."""
    return _error(request, InvalidInput.status_code, describe_validation_errors(error.errors()))


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (unknown path, wrong method, an unparseable body)."""
    return _error(request, error.status_code, str(error.detail), error.headers)


async def _write_error(request: Request, error: WriteError) -> JSONResponse:
    if _document_too_large_error(error):
        return await _document_too_large(request, error)
    return await _unexpected_error(request, error)


def _document_too_large_error(error: WriteError) -> bool:
    if error.code in DOCUMENT_TOO_LARGE_CODES:
        return True
    message = (error.details or {}).get("errmsg", str(error))
    return error.code == BAD_VALUE and INSERT_TOO_LARGE in message


async def _document_too_large(request: Request, error: Exception) -> JSONResponse:
    logger.warning("%s %s refused: %s", request.method, request.url.path, error)
    return _error(
        request,
        DocumentFull.status_code,
        "the video's document would pass MongoDB's 16 MB limit; nothing was written",
    )


async def _store_write_failed(request: Request, error: StoreWriteFailed) -> JSONResponse:
    logger.error("%s %s: %s", request.method, request.url.path, error)
    status = HTTPStatus.INSUFFICIENT_STORAGE if error.disk_full else HTTPStatus.SERVICE_UNAVAILABLE
    return _error(request, status, str(error))


async def _os_error(request: Request, error: OSError) -> JSONResponse:
    """A file write (an upload) that the disk refused is the server's condition, not a crash."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        logger.error("%s %s: %s", request.method, request.url.path, error)
        return _error(
            request, HTTPStatus.INSUFFICIENT_STORAGE, "the server's disk is full; nothing of this request was kept"
        )
    return await _unexpected_error(request, error)


async def _client_disconnected(request: Request, error: ClientDisconnect) -> JSONResponse:
    """The client went away before its body was all in (or was cut off at a body limit): nobody
    reads this answer, and it is no fault of the service's."""
    logger.info("%s %s: the client disconnected before the request body was complete", request.method, request.url.path)
    return _error(request, HTTPStatus.BAD_REQUEST, "the request body was cut short")


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    """500, with the request's id as the error id that finds the logged exception."""
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=error)
    return _error(request, 500, internal_error_detail())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await connect(settings)
        if settings.uses_embedded_store:  # on MongoDB, live workers elsewhere may hold leases
            await queue.take_back(settings.job_max_attempts)
            await delivery.take_back()
        storage = open_storage(settings, database)
        await storage.prepare()
        logger.info("files: %s storage: %s", storage.kind, storage.describe())
        language_model = create_language_model(settings)
        app.state.context = AppContext(
            settings=settings,
            database=database,
            storage=storage,
            language_model=language_model,
            transcript_indexes=IndexCache(),
        )
        workers = WorkerPool(settings, storage, language_model)
        workers.start()
        logger.info("workers: %d in this process", len(workers.workers))
        webhooks = delivery.Dispatcher(settings)
        webhooks.start()
        try:
            yield
        finally:
            await workers.stop()
            await webhooks.stop()
            await language_model.close()
            database.close()

    app = VideoAnalyzerApp(
        settings,
        title="Video Analyzer",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,  # served by docs_router, for users only when users are on
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DocumentTooLarge, _document_too_large)
    app.add_exception_handler(WriteError, _write_error)
    app.add_exception_handler(StoreWriteFailed, _store_write_failed)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)
    for router in (
        health_router,
        users_router,
        videos_router,
        processing_router,
        media_router,
        ai_router,
        chat_router,
        search_router,
        stats_router,
        legacy_router,
        docs_router,
        web_router,
        observability_router,
        webhooks_router,
        openai_router,
    ):
        app.include_router(router)
    app.mount(STATIC_PATH, APP_FILES)
    describe_errors(app)
    return app
