"""The native codec: events round-trip exactly, and a data line survives any line splitter."""

from __future__ import annotations

import json

import pytest

from llm_sse_mount.codec import decode, dumps, encode
from llm_sse_mount.events import Done, Error, ReasoningDelta, Start, TextDelta, ToolCallDelta, Usage

EVENTS = [
    Start("s", "m"),
    TextDelta("a\u2028b\x85c\u2029d 你好\n"),
    ReasoningDelta("think"),
    ToolCallDelta(0, "c1", "f", '{"x":"\u2028"}'),
    Usage(1, 2, 3, estimated=True),
    Error("upstream_error", "boom", True),
    Done("stop"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: object) -> None:
    assert decode(*encode(event)) == event  # type: ignore[arg-type]


def test_a_data_line_is_one_line_for_python_splitlines_too() -> None:
    # SSE ends lines only at CR and LF; str.splitlines() also at NEL, U+2028 and U+2029,
    # which many hand-written clients use. The JSON escapes them; the text is unchanged.
    line = "data: " + dumps({"text": "a\u2028b\x85c\u2029d"})
    assert len(line.splitlines()) == 1
    assert json.loads(line[6:])["text"] == "a\u2028b\x85c\u2029d"
