"""OpenAI Responses API streams as ``FakeUpstream`` scripts, every event checked against the
official ``openai`` SDK's own types (``ResponseStreamEvent``), so the fake cannot drift from the
wire format.

::

    up.push(responses_stream([Summary("Thinking", " hard"), Text("Hel", "lo"),
                              Fn("call_1", "get_weather", '{"city":', '"巴黎"}')], split=3))

A stream is what the API sends: ``response.created``, ``response.in_progress``, then per item
``output_item.added`` / deltas / ``*.done`` / ``output_item.done``, and a terminal event:
``ending="completed"`` (default), ``"incomplete"`` (with ``incomplete_reason``), ``"failed"``
(with ``error``), ``"error"`` (a bare ``error`` event) or ``None`` (the body just stops).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel

from .anthropic_stream import cut
from .fake_upstream import End, Respond, Send, Sleep, Step

__all__ = ["Fn", "Refusal", "Summary", "Text", "responses_events", "responses_stream"]


def _event_classes() -> dict[str, type[BaseModel]]:
    """``type`` literal → the SDK's event class, from the SDK's own union."""
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], discriminator]
    out = {}
    for cls in typing.get_args(union):
        (literal,) = typing.get_args(cls.model_fields["type"].annotation)
        out[literal] = cls
    return out


_EVENTS = _event_classes()


@dataclass(frozen=True)
class Text:
    pieces: tuple[str, ...]

    def __init__(self, *pieces: str) -> None:
        object.__setattr__(self, "pieces", pieces)


@dataclass(frozen=True)
class Refusal:
    pieces: tuple[str, ...]

    def __init__(self, *pieces: str) -> None:
        object.__setattr__(self, "pieces", pieces)


@dataclass(frozen=True)
class Summary:
    """A reasoning item; each argument is one summary part, sent as one delta."""

    parts: tuple[str, ...]

    def __init__(self, *parts: str) -> None:
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class Fn:
    """A function call whose arguments arrive as these deltas (``deltas=False``: only in the
    ``function_call_arguments.done`` event)."""

    call_id: str
    name: str
    pieces: tuple[str, ...]
    deltas: bool = True

    def __init__(self, call_id: str, name: str, *pieces: str, deltas: bool = True) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "pieces", pieces)
        object.__setattr__(self, "deltas", deltas)


Item = Text | Refusal | Summary | Fn


def _response(status: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "model": model,
        "status": status,
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        **extra,
    }


def _item_events(index: int, item: Item) -> list[dict[str, Any]]:
    item_id = f"item_{index}"
    base = {"item_id": item_id, "output_index": index}
    if isinstance(item, (Text, Refusal)):
        refusal = isinstance(item, Refusal)
        kind = "refusal" if refusal else "output_text"
        part: dict[str, Any] = {"type": kind, kind if refusal else "text": ""}
        if not refusal:
            part["annotations"] = []
        message = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        full = "".join(item.pieces)
        done_part = {**part, ("refusal" if refusal else "text"): full}
        delta_kind = "response.refusal.delta" if refusal else "response.output_text.delta"
        done_kind = "response.refusal.done" if refusal else "response.output_text.done"
        extra = {} if refusal else {"logprobs": []}
        return [
            {"type": "response.output_item.added", "output_index": index, "item": message},
            {"type": "response.content_part.added", **base, "content_index": 0, "part": part},
            *[
                {"type": delta_kind, **base, "content_index": 0, "delta": p, **extra}
                for p in item.pieces
            ],
            {
                "type": done_kind,
                **base,
                "content_index": 0,
                ("refusal" if refusal else "text"): full,
                **extra,
            },
            {"type": "response.content_part.done", **base, "content_index": 0, "part": done_part},
            {
                "type": "response.output_item.done",
                "output_index": index,
                "item": {**message, "status": "completed", "content": [done_part]},
            },
        ]
    if isinstance(item, Summary):
        reasoning = {"id": item_id, "type": "reasoning", "summary": []}
        out: list[dict[str, Any]] = [
            {"type": "response.output_item.added", "output_index": index, "item": reasoning}
        ]
        for i, text in enumerate(item.parts):
            s = {**base, "summary_index": i}
            out += [
                {
                    "type": "response.reasoning_summary_part.added",
                    **s,
                    "part": {"type": "summary_text", "text": ""},
                },
                {"type": "response.reasoning_summary_text.delta", **s, "delta": text},
                {"type": "response.reasoning_summary_text.done", **s, "text": text},
                {
                    "type": "response.reasoning_summary_part.done",
                    **s,
                    "part": {"type": "summary_text", "text": text},
                },
            ]
        summary = [{"type": "summary_text", "text": t} for t in item.parts]
        out.append(
            {
                "type": "response.output_item.done",
                "output_index": index,
                "item": {**reasoning, "summary": summary},
            }
        )
        return out
    call = {
        "id": item_id,
        "type": "function_call",
        "call_id": item.call_id,
        "name": item.name,
        "arguments": "",
        "status": "in_progress",
    }
    arguments = "".join(item.pieces)
    deltas = [
        {"type": "response.function_call_arguments.delta", **base, "delta": p}
        for p in item.pieces
        if item.deltas
    ]
    return [
        {"type": "response.output_item.added", "output_index": index, "item": call},
        *deltas,
        {"type": "response.function_call_arguments.done", **base, "arguments": arguments},
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": {**call, "arguments": arguments, "status": "completed"},
        },
    ]


def responses_events(
    items: Sequence[Item],
    *,
    ending: str | None = "completed",
    incomplete_reason: str = "max_output_tokens",
    error: dict[str, Any] | None = None,
    usage: tuple[int, int] = (11, 22),
    model: str = "gpt-test",
) -> list[dict[str, Any]]:
    """The stream's events, each validated by the SDK and numbered by ``sequence_number``."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", model)},
        {"type": "response.in_progress", "response": _response("in_progress", model)},
    ]
    for index, item in enumerate(items):
        events += _item_events(index, item)
    prompt, completion = usage
    counts = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": prompt + completion,
    }
    if ending == "completed":
        events.append(
            {"type": "response.completed", "response": _response("completed", model, usage=counts)}
        )
    elif ending == "incomplete":
        details = {"reason": incomplete_reason}
        response = _response("incomplete", model, usage=counts, incomplete_details=details)
        events.append({"type": "response.incomplete", "response": response})
    elif ending == "failed":
        err = error or {"code": "server_error", "message": "The server had an error."}
        events.append(
            {"type": "response.failed", "response": _response("failed", model, error=err)}
        )
    elif ending == "error":
        events.append(
            {
                "type": "error",
                "code": "rate_limit_exceeded",
                "message": "Slow down.",
                "param": None,
                **(error or {}),
            }
        )
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
        _EVENTS[event["type"]].model_validate(event)  # the SDK's schema: a drifted fake fails
    return events


def responses_stream(
    items: Sequence[Item],
    *,
    split: int | Sequence[int] | None = None,
    pace: float = 0.0,
    last_step: Step | None = None,
    **options: Any,
) -> list[Step]:
    """A FakeUpstream script (``options`` as in :func:`responses_events`)."""
    frames = [
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode()
        for e in responses_events(items, **options)
    ]
    pieces = frames if split is None else cut(b"".join(frames), split)
    steps: list[Step] = [Respond(200, {"content-type": "text/event-stream; charset=utf-8"})]
    for i, piece in enumerate(pieces):
        if pace and i:
            steps.append(Sleep(pace))
        steps.append(Send(piece))
    steps.append(End() if last_step is None else last_step)
    return steps
