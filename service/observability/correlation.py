"""What the work in progress belongs to: the request being answered, the video being processed.

Both are context variables, so every log line written while the work runs can name them (see
logs.py), and asyncio copies them into the tasks and threads (`asyncio.to_thread`) it starts.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""What a client's (or a proxy's) request id may be: UUIDs, trace ids and the like. Anything else
(a log-injection attempt, a megabyte of text) is replaced, since it is written into every log line."""

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
video_id: ContextVar[str | None] = ContextVar("video_id", default=None)


def request_id_for(sent: str | None) -> str:
    """The id a request goes by: the one it carried when that one is sane, else a new one."""
    if sent is not None and _SANE_REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def internal_error_detail() -> str:
    """What a client is told of an unexpected failure: the request's id, to find it in the log."""
    return f"internal error (error id {request_id.get()}); the service log has the details under that id"


@contextmanager
def processing(video: object) -> Iterator[None]:
    """Within this block, log lines name the video being processed."""
    token = video_id.set(str(video))
    try:
        yield
    finally:
        video_id.reset(token)
