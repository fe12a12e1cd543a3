"""Keeping client tokens out of the server's access log.

A browser's ``EventSource`` cannot send headers, so :class:`~.access.BearerTokens` also takes
the token as ``?access_token=``. The server's access log writes every request line, query
string included: without a filter, each token lands in the log in clear. Install the filter
once, where the host configures logging::

    from llm_sse_mount import mask_access_tokens

    mask_access_tokens()          # on the "uvicorn.access" logger (gunicorn: "gunicorn.access")

or declare it in a ``logging.config.dictConfig`` (uvicorn's ``--log-config``)::

    "filters": {"tokens": {"()": "llm_sse_mount.AccessTokenFilter"}},
    "loggers": {"uvicorn.access": {"filters": ["tokens"], ...}},

The value is replaced by ``***``; the parameter's name stays, so the log still tells that a
token was sent. Only the record's message and arguments change, never the request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["AccessTokenFilter", "mask_access_tokens"]

#: The query parameters that carry credentials by default.
DEFAULT_PARAMS = ("access_token",)


class AccessTokenFilter(logging.Filter):
    """A logging filter that masks the values of ``params`` in query strings of a record's
    message and string arguments (uvicorn's access log passes the path as an argument)."""

    def __init__(self, params: Iterable[str] = DEFAULT_PARAMS) -> None:
        super().__init__()
        names = "|".join(re.escape(p) for p in params)
        # After ? or &, the name, then everything up to the next separator of the query
        # or of the log line.
        self._pattern = re.compile(rf"([?&](?:{names})=)[^&#\s\"']*", re.IGNORECASE)

    def mask(self, text: str) -> str:
        """``text`` with every credential parameter's value replaced by ``***``."""
        return self._pattern.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: self.mask(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True  # masks, never drops a line


def mask_access_tokens(
    logger: str | logging.Logger = "uvicorn.access", params: Iterable[str] = DEFAULT_PARAMS
) -> AccessTokenFilter:
    """Install an :class:`AccessTokenFilter` on ``logger`` (once: calling again returns the
    filter already there). Filters on a logger see the records logged on it, which is how
    uvicorn and gunicorn write their access lines."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    for existing in target.filters:
        if isinstance(existing, AccessTokenFilter):
            return existing
    installed = AccessTokenFilter(params)
    target.addFilter(installed)
    return installed
