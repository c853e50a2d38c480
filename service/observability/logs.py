"""The process's log: every line names its request and the video being processed, as text or JSON.

`configure_logging` installs one handler on the root logger; uvicorn's loggers (its access log
included) propagate to it, so their lines carry the request id too.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from service.config import Settings
from service.observability import correlation

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(correlation)s: %(message)s"


class CorrelationFilter(logging.Filter):
    """Adds `request_id`, `video_id` and, for the text format, `correlation` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = correlation.request_id.get()
        record.video_id = correlation.video_id.get()
        names = [
            f"{name}={value}" for name, value in (("request", record.request_id), ("video", record.video_id)) if value
        ]
        record.correlation = f" [{' '.join(names)}]" if names else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (null outside a request),
    video_id while a video is processed, and the exception's traceback when there is one.

    Everything outside ASCII is escaped, so that a line is always one line and always encodable,
    whatever text a message quotes (a lone surrogate from a client, say)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        video = getattr(record, "video_id", None)
        if video:
            entry["video_id"] = video
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry)


def log_handler(log_format: str, stream: TextIO) -> logging.Handler:
    """A handler writing `stream` in LOG_FORMAT, with the request and video ids on each line."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(settings: Settings) -> None:
    """LOG_LEVEL and LOG_FORMAT for the whole process, on standard error."""
    logging.basicConfig(level=settings.log_level.upper(), handlers=[log_handler(settings.log_format, sys.stderr)])
