"""Access log lines without media tokens: a token written to a log could be used by anyone who
reads the log, for as long as it lasts."""

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_TOKEN_PARAMETER = re.compile(r"([?&]token=)[^&#\s]*")


class HideMediaTokens(logging.Filter):
    """Replaces the value of each `token` query parameter in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_PARAMETER.sub(r"\1[hidden]", value) if isinstance(value, str) else value for value in record.args
            )
        return True


def hide_media_tokens() -> None:
    logging.getLogger(ACCESS_LOGGER).addFilter(HideMediaTokens())
