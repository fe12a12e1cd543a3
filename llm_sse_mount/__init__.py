"""llm_sse_mount: a streaming LLM chat endpoint for any ASGI app.

::

    app.mount("/llm", LLMMount(provider=providers.Zhipu(api_key=...), model="glm-4-flash"))
"""

import typing as _typing

from . import providers
from .access import AuthenticatedUser, Authorize, BearerTokens, Principal, from_dependency
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
from .formats.aisdk import AISDKEncoder
from .formats.native import NativeEncoder
from .formats.openai import OpenAIEncoder
from .formats.text import TextEncoder
from .limits import Limits, LimitStore, MemoryLimitStore, Rate, RedisLimitStore
from .log_filters import AccessTokenFilter, mask_access_tokens
from .mount import LLMMount
from .providers.anthropic import Anthropic
from .providers.openai import OpenAICompatible
from .providers.scripted import Scripted
from .providers.zhipu import Zhipu
from .relay import CompletionRecord
from .request import ChatRequest, Message
from .sse_decoder import ServerSentEvent, SSEDecodeError, SSEDecoder
from .store.base import StreamInfo, StreamStore
from .store.memory import MemoryStore

__all__ = [
    "AISDKEncoder",
    "AccessTokenFilter",
    "Anthropic",
    "AuthenticatedUser",
    "Authorize",
    "BearerTokens",
    "BodyTimeout",
    "ChatRequest",
    "CompletionRecord",
    "ConfigError",
    "Done",
    "Error",
    "Finish",
    "Forbidden",
    "LLMMount",
    "LLMSSEError",
    "LimitStore",
    "Limits",
    "MemoryLimitStore",
    "MemoryStore",
    "Message",
    "NativeEncoder",
    "NotFound",
    "OpenAICompatible",
    "OpenAIEncoder",
    "PayloadTooLarge",
    "Principal",
    "Rate",
    "RateLimited",
    "ReasoningDelta",
    "RedisLimitStore",
    "RedisStore",
    "RequestError",
    "SSEDecodeError",
    "SSEDecoder",
    "Scripted",
    "ServerSentEvent",
    "Start",
    "StreamEvent",
    "StreamInfo",
    "StreamInterrupted",
    "StreamStore",
    "TextDelta",
    "TextEncoder",
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


def __getattr__(name: str) -> _typing.Any:
    # RedisStore needs the optional ``redis`` package: import it only when asked for.
    if name == "RedisStore":
        from .store.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
