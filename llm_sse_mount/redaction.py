"""Belt and braces for secrets in logs: a filter on the package's logger that replaces every
secret of every live mount (upstream API keys, the Zhipu signing secret) with ``***``.

The code already keeps secrets out of messages (providers' ``repr``, redacted upstream error
messages); this filter catches what a future log line or a traceback might let through. It is
installed once on the ``llm_sse_mount`` logger (every module of the package logs there) and on
the httpx/httpcore loggers that see upstream traffic (httpcore logs response headers at DEBUG,
and an upstream or proxy may echo a key there). A filter on a logger only sees that logger's own
records, hence the list of exact names. It holds its mounts weakly, so a mount that is dropped
stops being consulted.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Iterable
from typing import Protocol

__all__ = ["SecretRedactor", "install_redactor", "log_id", "redact"]

LOGGER_NAMES = (
    "llm_sse_mount",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)
MASK = "***"


class HasSecrets(Protocol):
    def secrets(self) -> tuple[str, ...]: ...


def log_id(stream_id: str) -> str:
    """What logs call a stream: on an open mount the stream id is the capability to read it,
    so logs carry a digest that joins log lines without granting anything."""
    return "s-" + hashlib.sha256(stream_id.encode()).hexdigest()[:12]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced by ``***``, longest first so that a
    secret contained in another (Zhipu's secret inside its ``id.secret`` key) leaves no tail."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class SecretRedactor(logging.Filter):
    """Rewrites records that mention a secret of any registered source."""

    def __init__(self) -> None:
        super().__init__()
        self._sources: weakref.WeakSet[HasSecrets] = weakref.WeakSet()

    def add(self, source: HasSecrets) -> None:
        self._sources.add(source)

    def secrets(self) -> list[str]:
        return [s for source in list(self._sources) for s in source.secrets() if s]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, redacted; formatters reuse exc_text when it is set.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


def install_redactor(source: HasSecrets, logger_names: Iterable[str] = LOGGER_NAMES) -> None:
    """Register ``source``'s secrets with the redactor of each logger (added once per logger)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        redactor = next((f for f in logger.filters if isinstance(f, SecretRedactor)), None)
        if redactor is None:
            redactor = SecretRedactor()
            logger.addFilter(redactor)
        redactor.add(source)
