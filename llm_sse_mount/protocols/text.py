"""Plain text over SSE (``?format=text``), for the simplest page::

    const es = new EventSource("/llm/chat?format=text&prompt=" + encodeURIComponent(q));
    es.onmessage = (e) => { out.textContent += e.data; };
    es.addEventListener("done", () => es.close());

Each answer text delta is one unnamed event (so ``onmessage`` fires) whose data is the text
itself. A newline inside the text becomes one more ``data:`` line of the same event, which
``EventSource`` joins back with ``\\n``, so ``e.data`` is exactly the text. SSE cannot carry a
carriage return inside data (it ends a line), so ``\\r\\n`` and ``\\r`` arrive as ``\\n``.

Reasoning, tool calls and usage do not show in this format. The stream ends with
``event: done`` / ``data: [DONE]`` (a simple client must close on it: ``EventSource``
reconnects by itself when a response ends). A failure after the start is ``event: error``
with the native JSON ``{"code", "message", "retryable"}``, then the done frame.

Frames carry the native ``id: <stream_id>:<seq>``, so a reconnect (``Last-Event-ID``) with the
same URL resumes where it stopped, still as text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..codec import dumps, event_data
from ..events import Done, Error, Frame, TextDelta

__all__ = ["TextEncoder"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class TextEncoder:
    """Encodes answer text as plain ``data:`` lines. One instance per response: it remembers
    whether the last text ended with ``\r``, so a ``\r\n`` split across two deltas still
    makes one newline."""

    def __init__(self, stream_id: str, model: str = "") -> None:
        self._prefix = f"id: {stream_id}:"
        self._after_cr = False

    def encode(self, frames: Sequence[Frame]) -> bytes:
        parts: list[str] = []
        for seq, event in frames:
            if type(event) is TextDelta:
                text = event.text
                if not text:
                    continue  # an empty event would still fire onmessage, with nothing to add
                if self._after_cr and text[0] == "\n":
                    text = text[1:]  # the "\n" of a "\r\n" whose "\r" was already sent
                self._after_cr = event.text.endswith("\r")
                if not text:
                    continue
                lines = _LINE_BREAK.split(text)
                # "data: " + line: the parser strips exactly one space, so leading spaces of
                # the text itself survive.
                parts.append(f"{self._prefix}{seq}\n")
                parts.extend(f"data: {line}\n" for line in lines)
                parts.append("\n")
            elif isinstance(event, Error):
                parts.append(
                    f"{self._prefix}{seq}\nevent: error\ndata: {dumps(event_data(event))}\n\n"
                )
            elif isinstance(event, Done):
                parts.append(f"{self._prefix}{seq}\nevent: done\ndata: [DONE]\n\n")
        return "".join(parts).encode()
