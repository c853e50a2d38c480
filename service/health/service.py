"""Readiness: whether this node can serve requests now, which needs its store to answer."""

import logging

from service.context import AppContext
from service.db.service import StoreUnreachable
from service.errors import StoreUnavailable
from service.health.schemas import Readiness

logger = logging.getLogger(__name__)


async def readiness(context: AppContext) -> Readiness:
    """Ready when the store (and GridFS, with STORAGE=gridfs) answers within READY_TIMEOUT_SECONDS;
    StoreUnavailable (503) otherwise."""
    try:
        await context.database.ping(context.settings.ready_timeout_seconds, *context.storage.probes())
    except StoreUnreachable as error:
        detail = f"not ready: the {context.database.kind} store {error}"
        cause = error.__cause__
        logger.warning("%s%s", detail, f": {cause.__class__.__name__}: {cause}" if cause else "")
        raise StoreUnavailable(detail) from error
    return Readiness(status="ready", database=context.database.kind)
