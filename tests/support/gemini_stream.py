"""Gemini ``streamGenerateContent?alt=sse`` streams as ``FakeUpstream`` scripts.

::

    up.push(gemini_stream([Thought("Hmm"), "Hello, ", "世界", Call("get_weather", {"city": "巴黎"})],
                          split=3))

One chunk per item, each a ``GenerateContentResponse`` as the API sends it: a ``str`` is a text
part, :class:`Thought` a ``thought: true`` part, :class:`Call` a ``functionCall`` part (no
``id``, as the Gemini API sends them, unless given). Like the API, every chunk carries the
cumulative ``usageMetadata`` and the last one the ``finishReason``; the body then simply ends
(there is no end marker). ``error`` replaces the ending with a ``{"error": ...}`` data line;
``block_reason`` sends a ``promptFeedback`` chunk with no candidates (a blocked prompt).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .anthropic_stream import cut
from .fake_upstream import Body, End, Respond, Send, Sleep, Step

__all__ = ["Call", "Thought", "gemini_chunks", "gemini_error_body", "gemini_stream"]


@dataclass(frozen=True)
class Thought:
    text: str


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


Item = str | Thought | Call


def _part(item: Item) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, Thought):
        return {"text": item.text, "thought": True}
    call: dict[str, Any] = {"name": item.name, "args": item.args}
    if item.id is not None:
        call["id"] = item.id
    return {"functionCall": call, "thoughtSignature": "c2lnbmF0dXJl"}


def gemini_chunks(
    items: Sequence[Item],
    *,
    finish_reason: str | None = "STOP",
    prompt_tokens: int = 9,
    output_tokens: int = 21,
    thoughts_tokens: int | None = 5,
    block_reason: str | None = None,
    model: str = "gemini-test",
) -> list[dict[str, Any]]:
    """The stream's ``data:`` payloads, in order."""
    if block_reason is not None:
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        return [{"promptFeedback": {"blockReason": block_reason}, "usageMetadata": usage}]
    chunks: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        done = i + 1
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens * done // len(items),
        }
        if thoughts_tokens is not None:
            usage["thoughtsTokenCount"] = thoughts_tokens
        usage["totalTokenCount"] = (
            prompt_tokens + usage["candidatesTokenCount"] + (thoughts_tokens or 0)
        )
        candidate: dict[str, Any] = {
            "content": {"parts": [_part(item)], "role": "model"},
            "index": 0,
        }
        chunks.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": "resp-fake",
            }
        )
    if finish_reason is not None:
        if not chunks:
            chunks.append({"candidates": [{"content": {"parts": [{"text": ""}]}, "index": 0}]})
        chunks[-1]["candidates"][0]["finishReason"] = finish_reason
    return chunks


def gemini_stream(
    items: Sequence[Item],
    *,
    split: int | Sequence[int] | None = None,
    pace: float = 0.0,
    error: dict[str, Any] | None = None,
    ending: Step | None = None,
    **options: Any,
) -> list[Step]:
    """A FakeUpstream script (``options`` as in :func:`gemini_chunks`). ``split`` cuts the
    whole byte stream anywhere; ``error`` is sent as a last ``data:`` line instead of the
    finish; ``ending`` replaces ``End()`` (``Hang()`` stalls, ``Drop()`` dies)."""
    if error is not None:
        options["finish_reason"] = None
    payloads: list[Any] = gemini_chunks(items, **options)
    if error is not None:
        payloads.append({"error": error})
    # Gemini writes "data: {json}\r\n\r\n" with CRLF line endings.
    frames = [f"data: {json.dumps(p, ensure_ascii=False)}\r\n\r\n".encode() for p in payloads]
    pieces = frames if split is None else cut(b"".join(frames), split)
    steps: list[Step] = [Respond(200, {"content-type": "text/event-stream"})]
    for i, piece in enumerate(pieces):
        if pace and i:
            steps.append(Sleep(pace))
        steps.append(Send(piece))
    steps.append(End() if ending is None else ending)
    return steps


def gemini_error_body(
    code: int, status: str, message: str = "error", retry_delay: str | None = None
) -> Body:
    """A Google API error response (``{"error": {"code", "message", "status", "details"}}``)."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if retry_delay is not None:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return Body(code, json.dumps({"error": err}).encode())
