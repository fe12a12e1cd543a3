"""llm_sse_mount: a streaming LLM chat endpoint for any ASGI app.

::

    from llm_sse_mount import LLMMount, Zhipu

    app.mount("/llm", LLMMount(provider=Zhipu(api_key="id.secret"), model="glm-4-flash"))

The manual is in ``docs/`` (start at ``docs/getting-started.md``).
"""

import typing as _typing

from . import providers
from .core.access import AuthenticatedUser, Authorize, BearerTokens, Principal, from_dependency
from .core.limits import Limits, LimitStore, MemoryLimitStore, Rate, RedisLimitStore
from .core.observe import Observation, StreamObserver, StreamStart
from .core.records import CompletionRecord
from .errors import (
    BodyTimeout,
    ConfigError,
    Forbidden,
    LLMSSEError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestError,
    StreamInterrupted,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
)
from .events import (
    Done,
    Error,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .log_filters import AccessTokenFilter, mask_access_tokens
from .mount import LLMMount
from .protocols.aisdk import AISDKEncoder
from .protocols.native import NativeEncoder
from .protocols.openai_chat import OpenAIEncoder
from .protocols.responses import ResponsesEncoder
from .protocols.text import TextEncoder
from .providers.anthropic import Anthropic
from .providers.capabilities import Capabilities
from .providers.gemini import Gemini
from .providers.openai import OpenAICompatible
from .providers.openai_responses import OpenAIResponses
from .providers.scripted import Scripted
from .providers.zhipu import Zhipu
from .request import ChatRequest, ImagePart, Message, Reasoning, ResponseFormat, TextPart
from .settings import RequestPolicy, RetryPolicy, Settings, StreamOptions, Timeouts
from .sse_decoder import ServerSentEvent, SSEDecodeError, SSEDecoder
from .store.base import StreamInfo, StreamStore
from .store.memory import MemoryStore
from .telemetry.logs import LogObserver

__all__ = [
    "AISDKEncoder",
    "AccessTokenFilter",
    "Anthropic",
    "AuthenticatedUser",
    "Authorize",
    "BearerTokens",
    "BodyTimeout",
    "Capabilities",
    "ChatRequest",
    "CompletionRecord",
    "ConfigError",
    "Done",
    "Error",
    "Finish",
    "Forbidden",
    "Gemini",
    "ImagePart",
    "LLMMount",
    "LLMSSEError",
    "LimitStore",
    "Limits",
    "LogObserver",
    "MemoryLimitStore",
    "MemoryStore",
    "Message",
    "NativeEncoder",
    "NotFound",
    "Observation",
    "OpenAICompatible",
    "OpenAIEncoder",
    "OpenAIResponses",
    "OpenTelemetryObserver",
    "PayloadTooLarge",
    "Principal",
    "PrometheusObserver",
    "Rate",
    "RateLimited",
    "Reasoning",
    "ReasoningDelta",
    "RedisLimitStore",
    "RedisStore",
    "RequestError",
    "RequestPolicy",
    "ResponseFormat",
    "ResponsesEncoder",
    "RetryPolicy",
    "SSEDecodeError",
    "SSEDecoder",
    "Scripted",
    "ServerSentEvent",
    "Settings",
    "Start",
    "StreamEvent",
    "StreamInfo",
    "StreamInterrupted",
    "StreamObserver",
    "StreamOptions",
    "StreamStart",
    "StreamStore",
    "TextDelta",
    "TextEncoder",
    "TextPart",
    "Timeouts",
    "ToolCallDelta",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "Usage",
    "Zhipu",
    "from_dependency",
    "mask_access_tokens",
    "providers",
]

if _typing.TYPE_CHECKING:
    from .store.redis import RedisStore
    from .telemetry.otel import OpenTelemetryObserver
    from .telemetry.prometheus import PrometheusObserver


def __getattr__(name: str) -> _typing.Any:
    # RedisStore needs the optional ``redis`` package: import it only when asked for.
    if name == "RedisStore":
        from .store.redis import RedisStore

        return RedisStore
    # The telemetry observers need the optional ``otel`` / ``prometheus`` extras.
    if name == "OpenTelemetryObserver":
        from .telemetry.otel import OpenTelemetryObserver

        return OpenTelemetryObserver
    if name == "PrometheusObserver":
        from .telemetry.prometheus import PrometheusObserver

        return PrometheusObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
