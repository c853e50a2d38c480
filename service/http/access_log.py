"""Access log lines without media tokens: a token written to a log could be used by anyone who
reads the log, for as long as it lasts."""

import logging
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
TOKEN_PARAMETER = "token"
HIDDEN = "[hidden]"


class HideMediaTokens(logging.Filter):
    """Replaces the value of each `token` query parameter in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(without_tokens(value) if isinstance(value, str) else value for value in record.args)
        return True


def without_tokens(target: str) -> str:
    """A request target with each token parameter's value hidden. A parameter's name is read as
    the service reads it, percent-escapes decoded (`%74oken` is `token`), so no spelling of the
    name that the service accepts can carry a token into the log."""
    path, separator, query = target.partition("?")
    if not separator:
        return target
    return f"{path}?{'&'.join(_hidden(parameter) for parameter in query.split('&'))}"


def _hidden(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}={HIDDEN}" if equals and unquote_plus(name) == TOKEN_PARAMETER else parameter


def hide_media_tokens() -> None:
    logging.getLogger(ACCESS_LOGGER).addFilter(HideMediaTokens())
