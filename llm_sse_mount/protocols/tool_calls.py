"""Tool calls assembled from their streamed fragments, for encoders that need whole calls
(the AI SDK's ``tool-input-available``, non-streamed answers)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..events import ToolCallDelta

__all__ = ["AssembledCall", "ToolCalls"]


@dataclass
class AssembledCall:
    """One call: ``id`` and ``name`` from its first fragment that had them, the arguments
    exactly as they came, concatenated."""

    index: int
    id: str | None = None
    name: str | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.parts)


class ToolCalls:
    """The calls of one answer, by index."""

    def __init__(self) -> None:
        self._calls: dict[int, AssembledCall] = {}

    def add(self, event: ToolCallDelta) -> tuple[AssembledCall, bool]:
        """Fold in a fragment; returns its call and whether the fragment started it."""
        call = self._calls.get(event.index)
        new = call is None
        if call is None:
            call = self._calls[event.index] = AssembledCall(event.index)
        call.id = call.id or event.id
        call.name = call.name or event.name
        if event.arguments:
            call.parts.append(event.arguments)
        return call, new

    def __bool__(self) -> bool:
        return bool(self._calls)

    def __iter__(self) -> Iterator[AssembledCall]:
        return iter(sorted(self._calls.values(), key=lambda c: c.index))

    def clear(self) -> None:
        self._calls.clear()
