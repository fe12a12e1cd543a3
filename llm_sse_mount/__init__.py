"""llm_sse_mount: a streaming LLM chat endpoint for any ASGI app.

::

    app.mount("/llm", LLMMount(provider=providers.Zhipu(api_key=...), model="glm-4-flash"))
"""

from . import providers
from .errors import (
    ConfigError,
    Forbidden,
    LLMSSEError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestError,
    StreamInterrupted,
    Unauthorized,
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
from .mount import LLMMount
from .providers.anthropic import Anthropic
from .providers.openai import OpenAICompatible
from .providers.scripted import Scripted
from .providers.zhipu import Zhipu
from .relay import CompletionRecord
from .request import ChatRequest, Message
from .sse_decoder import ServerSentEvent, SSEDecodeError, SSEDecoder
from .store.memory import MemoryStore

__all__ = [
    "AISDKEncoder",
    "Anthropic",
    "ChatRequest",
    "CompletionRecord",
    "ConfigError",
    "Done",
    "Error",
    "Finish",
    "Forbidden",
    "LLMMount",
    "LLMSSEError",
    "MemoryStore",
    "Message",
    "NativeEncoder",
    "NotFound",
    "OpenAICompatible",
    "OpenAIEncoder",
    "PayloadTooLarge",
    "RateLimited",
    "ReasoningDelta",
    "RequestError",
    "SSEDecodeError",
    "SSEDecoder",
    "Scripted",
    "ServerSentEvent",
    "Start",
    "StreamEvent",
    "StreamInterrupted",
    "TextDelta",
    "TextEncoder",
    "ToolCallDelta",
    "Unauthorized",
    "UpstreamError",
    "UpstreamTimeout",
    "Usage",
    "Zhipu",
    "providers",
]
