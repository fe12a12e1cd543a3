"""The native event stream (DESIGN.md): ``id: <stream_id>:<seq>``, ``event: <name>``, and one
compact JSON ``data:`` line per frame. JSON escapes every CR and LF inside strings, so a frame's
data is always exactly one line and text is never altered."""

from __future__ import annotations

from collections.abc import Mapping

from ..events import TextDelta
from ..store.base import Frame
from .base import dumps

__all__ = ["NativeEncoder"]


class NativeEncoder:
    """Encodes frames as native SSE events. Stateless; one instance may serve every response."""

    headers: Mapping[str, str] = {}

    def __init__(self, stream_id: str, model: str = "") -> None:
        self._prefix = f"id: {stream_id}:"

    def encode(self, frames: list[Frame]) -> bytes:
        prefix = self._prefix
        parts = []
        for seq, event in frames:
            # Text deltas are nearly every frame: skip building a dict for them.
            if type(event) is TextDelta:
                data = '{"text":' + dumps(event.text) + "}"
            else:
                data = dumps(event.data())
            parts.append(f"{prefix}{seq}\nevent: {event.event}\ndata: {data}\n\n")
        return "".join(parts).encode()
