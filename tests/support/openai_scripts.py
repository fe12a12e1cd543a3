"""Scripts of OpenAI-compatible (and Zhipu) streams for the fake upstream, cut at will."""

from __future__ import annotations

import itertools
import json as jsonlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from .upstream_steps import End, Respond, Send, Sleep, Step

# ------------------------------------------------------------------------------------ builders

#: The default ending: the response ends after [DONE].
_END = End()

LineEnding = Literal["\n", "\r\n", "\r"]
Split = int | Sequence[int] | None


def sse_bytes(events: Iterable[str | Mapping[str, Any]], *, line_ending: str = "\n") -> bytes:
    """Build raw SSE text.

    Each event is a ``str`` (the data; a multi-line string becomes several ``data:`` lines) or a
    mapping with any of ``comment``, ``event``, ``id``, ``retry``, ``data`` (a non-``str`` data
    value is JSON-encoded compactly, non-ASCII kept as UTF-8). Every event ends with a blank line.

    >>> sse_bytes(["hi", {"event": "x", "data": {"a": 1}}])
    b'data: hi\\n\\nevent: x\\ndata: {"a":1}\\n\\n'
    """
    out: list[str] = []
    for event in events:
        fields = {"data": event} if isinstance(event, str) else dict(event)
        if "comment" in fields:
            out += [f": {line}" for line in str(fields["comment"]).split("\n")]
        for name in ("event", "id", "retry"):
            if name in fields:
                out.append(f"{name}: {fields[name]}")
        if "data" in fields:
            data = fields["data"]
            if not isinstance(data, str):
                data = jsonlib.dumps(data, ensure_ascii=False, separators=(",", ":"))
            out += [f"data: {line}" for line in data.split("\n")]
        out.append("")
    return "".join(line + line_ending for line in out).encode("utf-8")


def _cut(frames: list[bytes], split: Split) -> list[bytes]:
    if split is None:
        return frames
    stream = b"".join(frames)
    if isinstance(split, int):
        if split < 1:
            raise ValueError("split must be >= 1")
        offsets = list(range(split, len(stream), split))
    else:
        offsets = sorted({o for o in split if 0 < o < len(stream)})
    bounds = [0, *offsets, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def _script(
    frames: list[bytes], split: Split, pace: float, ending: Step, status: int = 200
) -> list[Step]:
    steps: list[Step] = [Respond(status)]
    for i, piece in enumerate(_cut(frames, split)):
        if pace and i:
            steps.append(Sleep(pace))
        steps.append(Send(piece))
    steps.append(ending)
    return steps


def _delta_choice(item: str | Mapping[str, Any], first: bool, role_every: bool) -> dict[str, Any]:
    if isinstance(item, str):
        delta: dict[str, Any] = {"content": item}
        if first or role_every:
            delta = {"role": "assistant", **delta}
        return {"index": 0, "delta": delta, "finish_reason": None}
    return {"index": 0, "delta": dict(item), "finish_reason": None}


def openai_stream(
    chunks: Sequence[str | Mapping[str, Any]],
    *,
    done: bool = True,
    split: Split = None,
    pace: float = 0.0,
    usage: Mapping[str, int] | None = None,
    model: str = "m",
    finish_reason: str | None = "stop",
    line_ending: LineEnding = "\n",
    ending: Step = _END,
    stream_id: str = "chatcmpl-fake",
) -> list[Step]:
    """An OpenAI ``chat.completion.chunk`` stream as a script.

    ``chunks``: strings become content deltas (the first one carries ``role: assistant``); a
    mapping with ``choices`` or ``error`` is a whole frame (``choices`` frames get the missing
    ``id``/``object``/``created``/``model`` filled in; ``error`` frames go as-is); any other
    mapping is a raw ``delta`` (``{"reasoning_content": ...}``, ``{"tool_calls": [...]}``).
    Then a chunk with ``finish_reason`` (skip with ``None``), a ``choices: []`` chunk carrying
    ``usage`` if given, and ``data: [DONE]`` if ``done``.

    ``split``: ``None`` sends one frame per write; an int N cuts the whole byte stream into
    N-byte writes (cutting inside UTF-8 characters and between ``\\r`` and ``\\n``); a list gives
    the cut offsets. ``pace`` sleeps between writes. ``ending`` is the last step: ``End()``,
    ``Hang()`` (stay open after ``[DONE]``) or ``Drop()`` (with ``done=False``: die mid-stream).
    """
    envelope = {"id": stream_id, "object": "chat.completion.chunk", "created": 1700000000}
    envelope["model"] = model
    payloads: list[Any] = []
    for i, item in enumerate(chunks):
        if isinstance(item, Mapping) and "error" in item:
            payloads.append(dict(item))
        elif isinstance(item, Mapping) and "choices" in item:
            payloads.append({**envelope, **item})
        else:
            payloads.append({**envelope, "choices": [_delta_choice(item, i == 0, False)]})
    if finish_reason is not None:
        stop = {"index": 0, "delta": {}, "finish_reason": finish_reason}
        payloads.append({**envelope, "choices": [stop]})
    if usage is not None:
        payloads.append({**envelope, "choices": [], "usage": dict(usage)})
    if done:
        payloads.append("[DONE]")
    frames = [sse_bytes([{"data": p}], line_ending=line_ending) for p in payloads]
    return _script(frames, split, pace, ending)


def zhipu_stream(
    chunks: Sequence[str | Mapping[str, Any]],
    *,
    done: bool = True,
    split: Split = None,
    pace: float = 0.0,
    usage: Mapping[str, int] | None = None,
    model: str = "glm-4-flash",
    finish_reason: str = "stop",
    line_ending: LineEnding = "\n",
    ending: Step = _END,
    stream_id: str = "8313807536837492492",
) -> list[Step]:
    """Zhipu GLM's variant of the OpenAI stream, as a script.

    Like GLM: no ``object`` field, ``role: assistant`` in every content delta, ``finish_reason``
    on the last content chunk and repeated on one more chunk (empty content) that also carries
    ``usage`` if given, so usage arrives with non-empty ``choices`` and before ``[DONE]``.
    Mappings in ``chunks`` are raw deltas, or whole frames if they hold ``choices``/``error``.
    ``split``, ``pace``, ``line_ending``, ``ending`` as in ``openai_stream``.
    """
    envelope: dict[str, Any] = {"id": stream_id, "created": 1700000000, "model": model}
    payloads: list[Any] = []
    for item in chunks:
        if isinstance(item, Mapping) and ("error" in item or "choices" in item):
            payloads.append(dict(item) if "error" in item else {**envelope, **item})
        else:
            payloads.append({**envelope, "choices": [_delta_choice(item, True, True)]})
    last_content = next(
        (p for p in reversed(payloads) if isinstance(p, dict) and p.get("choices")), None
    )
    if last_content is not None:
        last_content["choices"][0]["finish_reason"] = finish_reason
    repeat: dict[str, Any] = {
        "index": 0,
        "finish_reason": finish_reason,
        "delta": {"role": "assistant", "content": ""},
    }
    final: dict[str, Any] = {**envelope, "choices": [repeat]}
    if usage is not None:
        final["usage"] = dict(usage)
    payloads.append(final)
    if done:
        payloads.append("[DONE]")
    frames = [sse_bytes([{"data": p}], line_ending=line_ending) for p in payloads]
    return _script(frames, split, pace, ending)


def trickle(
    data: bytes = b":\n", interval: float = 0.1, *, count: int | None = None, status: int = 200
) -> Iterator[Step]:
    """A stream that sends ``data`` every ``interval`` s, forever (or ``count`` times), then
    ``End()``. The default is an SSE comment line; ``trickle(b"d", 0.05)`` is one byte at a time.
    It is a generator: ``push`` it, don't use it as ``default``.
    """
    yield Respond(status)
    for _ in itertools.count() if count is None else range(count):
        yield Send(data)
        yield Sleep(interval)
    yield End()
