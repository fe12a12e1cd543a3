"""What an upstream can honour beyond plain chat: images, structured output, reasoning.

A request that asks for something the upstream cannot do is refused with a 400 naming the
upstream, before any upstream call: a client that asked for JSON must never get prose back
silently, and an image must never be dropped. A provider declares what it takes with a
``capabilities(model)`` method; a provider without one (a host's own) takes plain chat only.

Reasoning is different: it is a hint of how hard to think, not a shape of the answer, so an
upstream that has no such knob ignores it (documented per provider) instead of refusing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RequestError
from ..request import ChatRequest

__all__ = ["PLAIN", "Capabilities", "capabilities_of", "require_capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one upstream model accepts."""

    #: ``image_url`` parts as https URLs.
    image_urls: bool = False
    #: ``image_url`` parts as ``data:`` URIs (inline bytes).
    image_data: bool = False
    #: Which :class:`~llm_sse_mount.request.ResponseFormat` types it honours.
    response_formats: frozenset[str] = frozenset()


#: Plain chat: no images, no structured output.
PLAIN = Capabilities()


def capabilities_of(provider: object, model: str) -> Capabilities:
    """The provider's declared capabilities for ``model`` (:data:`PLAIN` if it declares none)."""
    declare = getattr(provider, "capabilities", None)
    if declare is None:
        return PLAIN
    caps = declare(model)
    return caps if isinstance(caps, Capabilities) else PLAIN


def require_capabilities(provider: object, chat: ChatRequest) -> None:
    """Raise a 400 when ``provider`` cannot honour what ``chat`` asks for."""
    name = getattr(provider, "name", type(provider).__name__)
    caps = capabilities_of(provider, chat.model)
    for image in chat.images:
        inline = image.url.startswith("data:")
        if not (caps.image_data if inline else caps.image_urls):
            form = "inline (data:) images" if inline else "image URLs"
            raise RequestError(
                f"the upstream {name!r} does not accept {form} with model {chat.model!r}",
                code="unsupported_content",
                param="messages",
            )
    fmt = chat.response_format
    if fmt is not None and fmt.type not in caps.response_formats:
        raise RequestError(
            f"the upstream {name!r} cannot honour response_format {fmt.type!r} "
            f"with model {chat.model!r}",
            code="unsupported_parameter",
            param="response_format",
        )
