"""Scrapes: this process's metrics with the queue read from the store at scrape time, so that
every node (API or worker) reports the same queue.

prometheus_client's encoders call collectors synchronously. The store read is asynchronous and
done first, on the event loop; the text is then made on a thread, with what was read.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

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
