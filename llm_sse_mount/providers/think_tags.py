"""Inline ``<think>…</think>`` reasoning, split out of the answer text.

R1-style models served without a reasoning parser (llama.cpp, Ollama, vLLM) put their thinking
at the start of ``content``, wrapped in ``<think>`` tags. :class:`ThinkTagSplitter` is an
incremental state machine fed the content deltas as they arrive; it yields
:class:`~llm_sse_mount.events.ReasoningDelta` for the thinking and
:class:`~llm_sse_mount.events.TextDelta` for the answer, without the tags.

The rules, chosen so that any cut of the stream gives the same reasoning and the same answer:

- Only a ``<think>`` that *opens* the content counts (after optional whitespace, which is then
  dropped). A later ``<think>`` in the answer ("use a <think> tag…") is answer text.
- Tags may arrive cut anywhere (``<th`` + ``ink>``): a possible tag prefix is held back until
  the next delta decides it, never longer.
- Whitespace right after ``</think>`` is dropped: R1 templates put ``"\\n\\n"`` there as a
  separator, and an answer starting with blank lines renders badly in every client.
- A think that never closes is reasoning to the end; :meth:`flush` releases what was held back
  (a content that is only ``"  <thi"`` is answer text).

Outside those cases the text passes byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ..events import ReasoningDelta, TextDelta

__all__ = ["CLOSE_TAG", "OPEN_TAG", "ThinkTagSplitter"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

_State = Literal["start", "thinking", "after", "answer"]


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkTagSplitter:
    """Content deltas in, reasoning and answer deltas out. One instance per stream."""

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._state: _State = "start"
        self._buffer = ""

    @property
    def state(self) -> _State:
        """``start`` (undecided), ``thinking``, ``after`` (dropping the separator), ``answer``."""
        return self._state

    def feed(self, content: str) -> Iterator[TextDelta | ReasoningDelta]:
        """Split one content delta (possibly into nothing yet, possibly into several events)."""
        if self._state == "answer":
            # The common case after the first few deltas: no buffering, no copying.
            if content:
                yield TextDelta(content)
            return
        self._buffer += content
        while self._buffer:
            if self._state == "start":
                stripped = self._buffer.lstrip()
                if not stripped or (
                    len(stripped) < len(OPEN_TAG) and OPEN_TAG.startswith(stripped)
                ):
                    return  # only whitespace or part of "<think>" so far: undecided
                if stripped.startswith(OPEN_TAG):
                    self._state, self._buffer = "thinking", stripped[len(OPEN_TAG) :]
                    continue
                self._state = "answer"
                text, self._buffer = self._buffer, ""
                yield TextDelta(text)
                return
            if self._state == "thinking":
                end = self._buffer.find(CLOSE_TAG)
                if end >= 0:
                    if end:
                        yield ReasoningDelta(self._buffer[:end])
                    self._state, self._buffer = "after", self._buffer[end + len(CLOSE_TAG) :]
                    continue
                hold = _held_suffix(self._buffer, CLOSE_TAG)
                ready = self._buffer[: len(self._buffer) - hold]
                self._buffer = self._buffer[len(ready) :]
                if ready:
                    yield ReasoningDelta(ready)
                return
            # "after": drop the separator whitespace, then everything is answer.
            text = self._buffer.lstrip()
            self._buffer = ""
            if text:
                self._state = "answer"
                yield TextDelta(text)
            return

    def flush(self) -> Iterator[TextDelta | ReasoningDelta]:
        """The content ended: release what was held back (call once, at the end)."""
        held, self._buffer = self._buffer, ""
        if not held:
            return
        if self._state == "start":
            self._state = "answer"
            yield TextDelta(held)
        elif self._state == "thinking":
            yield ReasoningDelta(held)  # a think that never closed, or a cut-off "</thi"
