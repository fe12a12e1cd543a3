"""Errors. Every error that reaches a client has a stable ``code``.

::

    LLMSSEError                  code, status, retryable, message
    ├── ConfigError              bad configuration, raised at construction (never reaches a client)
    ├── RequestError             400  the client's request is wrong (invalid_json, invalid_request,
    │   │                             unknown_field, unknown_model, ...)
    │   ├── PayloadTooLarge      413  body_too_large
    │   ├── BodyTimeout          408  body_timeout (the body did not arrive within body_timeout)
    │   ├── UnsupportedMediaType 415  unsupported_media_type (a body that is not JSON)
    │   ├── Unauthorized         401  unauthorized
    │   ├── Forbidden            403  forbidden / origin_forbidden
    │   ├── NotFound             404  not_found / stream_not_found
    │   └── RateLimited          429  rate_limited (carries retry_after)
    ├── UpstreamError            502  the upstream failed (upstream_error, upstream_unreachable,
    │   │                             upstream_auth, upstream_bad_response, ...)
    │   └── UpstreamTimeout      504  upstream_timeout
    └── StreamInterrupted             the stream ended for a reason of the mount's own
                                      (server_shutdown, stream_lost, send_timeout)

Before the first frame an error becomes an HTTP response ``{"error": {"code", "message"}}`` with
``status``; after it, an ``error`` frame followed by ``done``.
"""

from __future__ import annotations


class LLMSSEError(Exception):
    """Root of every error this package raises."""

    code: str = "internal_error"
    status: int = 500
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        #: Seconds the client (or the relay's retry loop) should wait, when known.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, status={self.status}, message={self.message!r})"


class ConfigError(LLMSSEError, ValueError):
    """Invalid configuration, found when the mount or a provider is built."""

    code = "config_error"


class RequestError(LLMSSEError):
    """The client's request is invalid."""

    code = "invalid_request"
    status = 400


class PayloadTooLarge(RequestError):
    code = "body_too_large"
    status = 413


class BodyTimeout(RequestError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    code = "body_timeout"
    status = 408


class UnsupportedMediaType(RequestError):
    """A body whose ``Content-Type`` is not JSON (refusing it stops cross-site "simple"
    requests: a browser sends ``text/plain`` or a form without asking the server first)."""

    code = "unsupported_media_type"
    status = 415


class Unauthorized(RequestError):
    code = "unauthorized"
    status = 401


class Forbidden(RequestError):
    code = "forbidden"
    status = 403


class NotFound(RequestError):
    code = "not_found"
    status = 404


class RateLimited(RequestError):
    code = "rate_limited"
    status = 429
    retryable = True


class UpstreamError(LLMSSEError):
    """The upstream API failed or answered something we cannot use."""

    code = "upstream_error"
    status = 502


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
    retryable = True


class StreamInterrupted(LLMSSEError):
    """The mount itself ended a stream (shutdown, lost producer, stalled client)."""

    code = "stream_interrupted"
    status = 503
    retryable = True
