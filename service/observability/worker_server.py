"""A worker-only node's /metrics and /health: a small Starlette app served by uvicorn on the
event loop the workers run on, scraping as the API's /metrics does (service.scrape, its Accept
fallback included), with uvicorn's own connection timeouts and the process's log format."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import __version__
from service.config import Settings
from service.health.schemas import Health
from service.observability.service import scrape

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
"""How long a stop waits for scrapes in progress."""


class _LoopServer(uvicorn.Server):
    """uvicorn on an event loop it does not own: the worker's signal handlers stay in place
    (uvicorn's would replace them, and raise the signal again when it stops)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WorkerMetricsServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self.server = server
        self.task = task
        self.port = port

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def worker_metrics_app(settings: Settings) -> Starlette:
    """GET /metrics (no credentials: the port is the scraper's alone) and GET /health."""

    async def metrics(request: Request) -> Response:
        body, content_type = await scrape(request.headers.get("accept"), settings.ready_timeout_seconds)
        return Response(body, media_type=content_type)

    async def health(request: Request) -> JSONResponse:
        database = "embedded" if settings.uses_embedded_store else "mongodb"
        return JSONResponse(Health(status="ok", database=database, version=__version__).model_dump())

    return Starlette(routes=[Route("/metrics", metrics), Route("/health", health)])


async def serve_worker_metrics(settings: Settings, host: str, port: int) -> WorkerMetricsServer:
    """Serve the worker's metrics on `host`:`port` (0: any free port) from this event loop until
    `stop()`; OSError when the address cannot be bound (bound here, before uvicorn starts, which
    would otherwise exit the process with a message of its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = await asyncio.to_thread(socket.create_server, (host, port), family=family)
    config = uvicorn.Config(
        worker_metrics_app(settings),
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = _LoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        if task.done():
            await task
            raise OSError(f"the metrics server on {host}:{port} stopped as it started")
        await asyncio.sleep(0.01)
    bound = listening.getsockname()[1]
    logger.info("metrics: http://%s:%d/metrics", host, bound)
    return WorkerMetricsServer(server, task, bound)
