"""Scrapes: this process's metrics with the queue read from the store at scrape time, so that
every node (API or worker) reports the same queue.

prometheus_client's encoders call collectors synchronously. The store read is asynchronous and
done first, on the event loop; the text is then made on a thread, with what was read.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from service.db.service import store_deadline
from service.observability.metrics import Scrape
from service.processing import queue
from service.processing.schemas import QueueDepth

logger = logging.getLogger(__name__)


async def read_queue(timeout: float) -> QueueDepth | None:
    """The queue as the store holds it now; None when the store does not answer within `timeout`.

    A scrape must not fail with the store: its other metrics are what shows the outage."""
    try:
        async with store_deadline(timeout):
            return await queue.depth()
    except Exception as error:
        logger.warning("metrics: the queue could not be read from the store: %r", error)
        return None


async def scrape(accept: str | None, timeout: float) -> tuple[bytes, str]:
    """The metrics in the format the scraper's Accept header asks for (Prometheus text by
    default, OpenMetrics when asked), and that format's content type."""
    depth = await read_queue(timeout)
    encode, content_type = _encoder(accept or "")
    return await asyncio.to_thread(encode, Scrape(depth)), content_type


def _encoder(accept: str) -> tuple[Callable[[Any], bytes], str]:
    """The encoder the Accept header asks for; Prometheus text for one the library cannot read
    (it raises on a version that is not numbers, `version=abc`): an Accept header is a preference."""
    try:
        return choose_encoder(accept)
    except (TypeError, ValueError):
        return choose_encoder("")


class _ScrapeOnLoop:
    """For prometheus_client's own HTTP server, which collects on its thread: the queue is read on
    the event loop the workers run on, while that thread waits for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout

    def collect(self) -> Iterable[Metric]:
        depth = asyncio.run_coroutine_threadsafe(read_queue(self.timeout), self.loop).result()
        yield from Scrape(depth).collect()


def serve_worker_metrics(host: str, port: int, timeout: float) -> WSGIServer:
    """GET /metrics on `host`:`port` for a worker-only node, from a thread of its own; call it from
    the event loop the workers run on, and `shutdown()` the server before that loop ends."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ScrapeOnLoop(asyncio.get_running_loop(), timeout))
    server, _ = start_http_server(port, host, registry)
    logger.info("metrics: http://%s:%d/metrics", host, server.server_port)
    return server
