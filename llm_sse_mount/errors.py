"""Errors, and the one catalogue of the codes a client can see.

::

    LLMSSEError                  code, status, retryable, param, message
    ├── ConfigError              bad configuration, raised at construction (never reaches a client)
    ├── RequestError             4xx  the client's request is wrong, or not allowed
    │   ├── PayloadTooLarge      413  body_too_large
    │   ├── BodyTimeout          408  body_timeout (the body did not arrive within body_timeout)
    │   ├── UnsupportedMediaType 415  unsupported_media_type (a body that is not JSON)
    │   ├── Unauthorized         401  unauthorized
    │   ├── Forbidden            403  forbidden, model_forbidden, access_denied, origin_forbidden
    │   ├── NotFound             404  not_found, stream_not_found
    │   └── RateLimited          429  rate_limited (carries retry_after)
    ├── UpstreamError            the upstream failed (502 unless its code says otherwise)
    │   └── UpstreamTimeout      504  upstream_timeout
    └── StreamInterrupted        the mount itself ended or refused a stream (server_shutdown,
                                 stream_lost, store_unavailable, ...)

A raise site picks a class and, within the class's family, a ``code``; the :data:`CATALOGUE`
alone decides what the code means: its HTTP status, whether asking again may work, and its name
in each client protocol (OpenAI's and Anthropic's ``error.type``). Before the first frame an error
becomes an HTTP response in the route's protocol shape with ``status``; after it, an ``error``
frame followed by ``done``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATALOGUE",
    "BodyTimeout",
    "ConfigError",
    "ErrorKind",
    "Forbidden",
    "LLMSSEError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RequestError",
    "StreamInterrupted",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "error_kind",
]


class LLMSSEError(Exception):
    """Root of every error this package raises.

    ``code`` must be a :data:`CATALOGUE` code of this class's family (checked here, so a typo
    fails where it is written). ``param`` names the request field the error is about, when
    there is one (OpenAI's ``error.param``). ``retry_after``: seconds the client (or the relay's
    retry loop) should wait, when known.
    """

    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        kind = CATALOGUE.get(self.code)
        if kind is None or not isinstance(self, kind.family):
            raise ValueError(f"{type(self).__name__} cannot carry the error code {self.code!r}")
        self.param = param
        self.retry_after = retry_after

    @property
    def kind(self) -> ErrorKind:
        return CATALOGUE[self.code]

    @property
    def status(self) -> int:
        return CATALOGUE[self.code].status

    @property
    def retryable(self) -> bool:
        return CATALOGUE[self.code].retryable

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, status={self.status}, message={self.message!r})"


class ConfigError(LLMSSEError, ValueError):
    """Invalid configuration, found when the mount or a provider is built."""

    code = "config_error"


class RequestError(LLMSSEError):
    """The client's request is invalid or not allowed."""

    code = "invalid_request"


class PayloadTooLarge(RequestError):
    code = "body_too_large"


class BodyTimeout(RequestError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    code = "body_timeout"


class UnsupportedMediaType(RequestError):
    """A body whose ``Content-Type`` is not JSON (refusing it stops cross-site "simple"
    requests: a browser sends ``text/plain`` or a form without asking the server first)."""

    code = "unsupported_media_type"


class Unauthorized(RequestError):
    code = "unauthorized"


class Forbidden(RequestError):
    code = "forbidden"


class NotFound(RequestError):
    code = "not_found"


class RateLimited(RequestError):
    code = "rate_limited"


class UpstreamError(LLMSSEError):
    """The upstream API failed or answered something we cannot use."""

    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class StreamInterrupted(LLMSSEError):
    """The mount itself ended or refused a stream (shutdown, lost producer, store outage)."""

    code = "stream_interrupted"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """What one error code means, in every protocol."""

    code: str
    status: int
    retryable: bool
    family: type[LLMSSEError]
    description: str

    @property
    def openai_type(self) -> str:
        """OpenAI's ``error.type`` (the SDKs pick their exception class by status)."""
        return _OPENAI_TYPES.get(self.status, "server_error")

    @property
    def anthropic_type(self) -> str:
        """Anthropic's ``error.type``."""
        return _ANTHROPIC_TYPES.get(self.status, "api_error")


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}

_R, _U, _S = RequestError, UpstreamError, StreamInterrupted
# code: (status, retryable, family, what it means)
_TABLE: dict[str, tuple[int, bool, type[LLMSSEError], str]] = {
    # the request
    "invalid_json": (400, False, _R, "the body is not JSON, or nests too deep"),
    "invalid_request": (400, False, _R, "the body does not have the protocol's shape"),
    "invalid_parameter": (400, False, _R, "a field has a wrong type or an out-of-range value"),
    "invalid_role": (400, False, _R, "a message has a role the protocol does not know"),
    "unknown_field": (400, False, _R, "a field nobody reads (a typo, or an unsupported feature)"),
    "unsupported_parameter": (400, False, _R, "a field this mount or its upstream cannot honour"),
    "unsupported_content": (
        400,
        False,
        _R,
        "a message part this mount or its upstream cannot take",
    ),
    "parameter_not_allowed": (400, False, _R, "the host does not let clients set this field"),
    "invalid_image": (400, False, _R, "an image that is neither an https URL nor a data: URI"),
    "too_many_images": (400, False, _R, "more images than ``max_images``"),
    "image_too_large": (400, False, _R, "a data: image larger than ``max_image_bytes``"),
    "model_required": (400, False, _R, "no model given and the mount has no default"),
    "unknown_model": (400, False, _R, "the model is not in the mount's allow-list"),
    "unknown_format": (400, False, _R, "``?format=`` names no format"),
    "too_many_messages": (400, False, _R, "more messages than ``max_messages``"),
    "conversation_too_long": (400, False, _R, "more characters than ``max_chars``"),
    "invalid_last_event_id": (400, False, _R, "``Last-Event-ID`` / ``after`` is malformed"),
    "client_disconnected": (400, False, _R, "the client left while sending its body"),
    "body_too_large": (413, False, PayloadTooLarge, "the body is larger than ``max_body_bytes``"),
    "body_timeout": (408, False, BodyTimeout, "the body did not arrive within ``body_timeout``"),
    "unsupported_media_type": (
        415,
        False,
        UnsupportedMediaType,
        "the body is not declared ``application/json``",
    ),
    # access
    "unauthorized": (401, False, Unauthorized, "no valid credentials"),
    "forbidden": (403, False, Forbidden, "the credentials do not allow this"),
    "model_forbidden": (403, False, Forbidden, "this principal may not use the model"),
    "access_denied": (403, False, Forbidden, "the host's access check refused the request"),
    "origin_forbidden": (403, False, Forbidden, "the ``Origin`` is not in ``allowed_origins``"),
    "rate_limited": (429, True, RateLimited, "a limit of the principal is spent; see Retry-After"),
    "too_many_readers": (429, True, RateLimited, "the stream has ``max_readers`` readers"),
    "access_check_failed": (500, False, LLMSSEError, "the host's authorize hook failed"),
    "limits_unavailable": (503, True, _S, "the limits store cannot be reached"),
    # routes and streams
    "not_found": (404, False, NotFound, "no such route"),
    "stream_not_found": (404, False, NotFound, "no such stream (or not yours, or expired)"),
    "model_not_found": (
        404,
        False,
        NotFound,
        "no such model here (or not one this caller may use)",
    ),
    "method_not_allowed": (405, False, _R, "the route does not take this method"),
    # the upstream
    "upstream_error": (502, True, _U, "the upstream failed (5xx, or an error frame)"),
    "upstream_unreachable": (502, True, _U, "the upstream cannot be reached"),
    "upstream_network_error": (502, True, _U, "the upstream reported a failure mid-answer"),
    "upstream_incomplete": (502, True, _U, "the upstream's stream ended before its answer"),
    "upstream_bad_response": (502, False, _U, "the upstream answered something unusable"),
    "upstream_bad_stream": (502, False, _U, "the upstream's event stream broke the SSE rules"),
    "upstream_auth": (502, False, _U, "the upstream refused the mount's credentials"),
    "upstream_not_found": (502, False, _U, "the upstream does not know the model or route"),
    "upstream_rejected": (400, False, _U, "the upstream refused the request as invalid"),
    "upstream_rate_limited": (429, True, _U, "the upstream's rate limit; see Retry-After"),
    "upstream_overloaded": (503, True, _U, "the upstream is overloaded"),
    "upstream_timeout": (504, True, UpstreamTimeout, "the upstream took too long"),
    # the mount itself
    "server_shutdown": (503, True, _S, "the server is stopping"),
    "stream_lost": (503, True, _S, "the worker producing the stream is gone"),
    "stream_too_long": (503, False, _S, "the answer exceeded the store's frame limit"),
    "store_unavailable": (503, True, _S, "the stream store cannot be reached"),
    "stream_interrupted": (503, True, _S, "the mount ended the stream"),
    "cancelled": (499, False, _S, "the stream was cancelled (its readers left, or a stop)"),
    "internal_error": (500, False, LLMSSEError, "a bug: the relay failed"),
    "config_error": (500, False, ConfigError, "bad configuration (never sent to a client)"),
}

#: Every error code, and what it means.
CATALOGUE: dict[str, ErrorKind] = {
    code: ErrorKind(code, status, retryable, family, description)
    for code, (status, retryable, family, description) in _TABLE.items()
}


def error_kind(code: str) -> ErrorKind:
    """The catalogue entry of ``code``; an unknown code (say, an upstream's own, relayed) is
    an ``upstream_error``."""
    return CATALOGUE.get(code) or CATALOGUE["upstream_error"]
