"""Anthropic Messages API streams as ``FakeUpstream`` scripts.

::

    up.push(anthropic_stream([Thinking("Hmm", "."), "Hello, ", Tool("toolu_1", "f", '{"a"', ':1}')],
                             stop_reason="tool_use", split=3))

A ``str`` block is a text block streamed as one ``text_delta``; :class:`TextBlock`,
:class:`Thinking` and :class:`Tool` give the pieces explicitly. The stream is what the API
sends: ``message_start`` (with ``input_tokens``), a ``ping``, per block ``content_block_start``
/ deltas / ``content_block_stop`` (thinking ends with a ``signature_delta``, tool input starts
with an empty ``input_json_delta`` as the API does), then ``message_delta`` (``stop_reason``
and cumulative ``output_tokens``) and ``message_stop``. ``error`` replaces the ending with an
``error`` event (e.g. ``{"type": "overloaded_error", "message": "Overloaded"}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .fake_upstream import End, Respond, Send, Sleep, Step, sse_bytes

__all__ = ["TextBlock", "Thinking", "Tool", "anthropic_events", "anthropic_stream", "cut"]


@dataclass(frozen=True)
class TextBlock:
    """A text block sent as these ``text_delta`` pieces."""

    pieces: tuple[str, ...]

    def __init__(self, *pieces: str) -> None:
        object.__setattr__(self, "pieces", pieces)


@dataclass(frozen=True)
class Thinking:
    """A thinking block sent as these ``thinking_delta`` pieces, then a signature."""

    pieces: tuple[str, ...]

    def __init__(self, *pieces: str) -> None:
        object.__setattr__(self, "pieces", pieces)


@dataclass(frozen=True)
class Tool:
    """A ``tool_use`` block whose input JSON arrives as these ``partial_json`` pieces."""

    id: str
    name: str
    pieces: tuple[str, ...]

    def __init__(self, id: str, name: str, *pieces: str) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "pieces", pieces)


Block = str | TextBlock | Thinking | Tool


def _block_events(index: int, block: Block) -> list[dict[str, Any]]:
    def delta(d: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": index, "delta": d}

    if isinstance(block, str):
        block = TextBlock(block)
    if isinstance(block, TextBlock):
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [delta({"type": "text_delta", "text": p}) for p in block.pieces]
    elif isinstance(block, Thinking):
        start = {"type": "thinking", "thinking": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": p}) for p in block.pieces]
        deltas.append(delta({"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}))
    else:
        start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
        deltas = [
            delta({"type": "input_json_delta", "partial_json": p}) for p in ("", *block.pieces)
        ]
        if not block.pieces:
            deltas = []  # a tool with empty input gets no input_json_delta at all
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *deltas,
        {"type": "content_block_stop", "index": index},
    ]


def anthropic_events(
    blocks: Sequence[Block],
    *,
    model: str = "claude-test",
    input_tokens: int = 12,
    output_tokens: int = 34,
    stop_reason: str | None = "end_turn",
    error: Mapping[str, Any] | None = None,
    stop: bool = True,
) -> list[dict[str, Any]]:
    """The stream's event payloads (each has its ``type``), in order."""
    message: dict[str, Any] = {
        "id": "msg_01Test",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "ping"},
    ]
    for index, block in enumerate(blocks):
        events += _block_events(index, block)
    if error is not None:
        return [*events, {"type": "error", "error": dict(error)}]
    if stop_reason is not None:
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        )
    if stop:
        events.append({"type": "message_stop"})
    return events


def cut(data: bytes, split: int | Sequence[int] | None) -> list[bytes]:
    """``data`` in N-byte pieces (an int) or cut at the given offsets (a list)."""
    if split is None:
        return [data]
    if isinstance(split, int):
        offsets = list(range(split, len(data), split))
    else:
        offsets = sorted({o for o in split if 0 < o < len(data)})
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def anthropic_stream(
    blocks: Sequence[Block],
    *,
    split: int | Sequence[int] | None = None,
    pace: float = 0.0,
    ending: Step | None = None,
    **options: Any,
) -> list[Step]:
    """A FakeUpstream script of the stream (``options`` as in :func:`anthropic_events`).

    ``split=None`` sends one event per write; an int or offsets cut the whole byte stream
    anywhere (inside UTF-8 characters, between a field and its newline). ``pace`` sleeps
    between writes; ``ending`` is the last step (``Hang()`` to stay open, ``Drop()`` to die).
    """
    frames = [
        sse_bytes([{"event": e["type"], "data": e}]) for e in anthropic_events(blocks, **options)
    ]
    pieces = frames if split is None else cut(b"".join(frames), split)
    steps: list[Step] = [Respond(200, {"content-type": "text/event-stream; charset=utf-8"})]
    for i, piece in enumerate(pieces):
        if pace and i:
            steps.append(Sleep(pace))
        steps.append(Send(piece))
    steps.append(End() if ending is None else ending)
    return steps
