"""Reading the native event stream in tests, with the package's own decoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from llm_sse_mount import SSEDecoder


@dataclass(frozen=True)
class Frame:
    id: str
    event: str
    data: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.id.rsplit(":", 1)[1])


def parse_frames(raw: bytes) -> list[Frame]:
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.close()
    return [Frame(e.id, e.event, json.loads(e.data)) for e in events]


def text_of(frames: list[Frame], event: str = "delta") -> str:
    return "".join(f.data["text"] for f in frames if f.event == event)


def post_chat(
    url: str, body: dict[str, Any], timeout: float = 10.0
) -> tuple[httpx.Response, bytes]:
    """POST and read the whole stream (finite streams only)."""
    with httpx.Client(timeout=timeout) as client, client.stream("POST", url, json=body) as response:
        raw = response.read()
    return response, raw


def assert_contract(frames: list[Frame]) -> None:
    """The native contract of DESIGN.md: ids ``<stream_id>:<seq>`` from 0 with no gap, ``start``
    first, exactly one ``done`` and it is last, ``error`` (if any) right before ``done``."""
    assert frames, "no frames"
    assert frames[0].event == "start"
    stream_id = frames[0].data["stream_id"]
    assert [f.id for f in frames] == [f"{stream_id}:{i}" for i in range(len(frames))]
    assert [f.event for f in frames].count("done") == 1
    assert frames[-1].event == "done"
    errors = [i for i, f in enumerate(frames) if f.event == "error"]
    assert errors in ([], [len(frames) - 2])
