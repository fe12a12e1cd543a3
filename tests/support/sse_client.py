"""A small blocking client for the mount's native event stream, for tests over real sockets.

::

    run = read_stream(url + "/llm/chat", params={"prompt": "hi"}, stop_after=5)  # cut after 5
    run.frames[-1].id            # "<stream_id>:<seq>"
    more = read_stream(url + "/llm/chat", headers={"Last-Event-ID": run.last_id})
    text = delta_text(run.frames + more.frames)

Frames are decoded with the package's own spec-exact ``SSEDecoder``; ``stop_after`` closes the
connection after that many frames, like a network cut seen from the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_sse_mount.sse_decoder import SSEDecoder

__all__ = [
    "Frame",
    "Run",
    "assert_complete",
    "delta_text",
    "read_stream",
    "resume_until_done",
    "seqs",
]


@dataclass(frozen=True)
class Frame:
    id: str
    event: str
    data: Any
    retry: int | None = None

    @property
    def seq(self) -> int:
        return int(self.id.rpartition(":")[2])

    @property
    def stream_id(self) -> str:
        return self.id.rpartition(":")[0]


@dataclass
class Run:
    status: int
    frames: list[Frame] = field(default_factory=list)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def last_id(self) -> str:
        return self.frames[-1].id

    @property
    def done(self) -> bool:
        return bool(self.frames) and self.frames[-1].event == "done"


def read_stream(
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    stop_after: int | None = None,
    timeout: float = 10.0,
    on_frame: Callable[[Frame], None] | None = None,
) -> Run:
    """GET ``url`` and decode frames until the body ends (or ``stop_after`` frames);
    ``on_frame`` sees each frame as it arrives (to time them)."""
    decoder = SSEDecoder()
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", url, params=params, headers=headers) as response,
    ):
        run = Run(response.status_code, headers=dict(response.headers))
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            run.body = response.read()
            return run
        for chunk in response.iter_raw():
            for event in decoder.feed(chunk):
                frame = Frame(event.id, event.event, json.loads(event.data), event.retry)
                run.frames.append(frame)
                if on_frame is not None:
                    on_frame(frame)
                if stop_after is not None and len(run.frames) >= stop_after:
                    return run  # leaving the with-block closes the connection mid-stream
    return run


def delta_text(frames: Sequence[Frame]) -> str:
    return "".join(f.data["text"] for f in frames if f.event == "delta")


def seqs(frames: Sequence[Frame]) -> list[int]:
    return [f.seq for f in frames]


def assert_complete(frames: Sequence[Frame], answer: str) -> None:
    """One stream, seqs 0..n without gap or repeat, one ``done{stop}`` at the end, and the
    delta text byte-identical to ``answer``."""
    assert seqs(frames) == list(range(len(frames)))
    assert len({f.stream_id for f in frames}) == 1
    assert [f.event for f in frames].count("done") == 1
    assert frames[-1].event == "done"
    assert frames[-1].data == {"finish_reason": "stop"}
    assert delta_text(frames) == answer


def resume_until_done(
    first: Run, urls: Callable[[int], str], cut: Callable[[], int | None]
) -> list[Frame]:
    """Reconnect with ``Last-Event-ID`` (to ``urls(attempt)``, cut after ``cut()`` frames)
    until the ``done`` frame arrives; return every frame received."""
    frames = list(first.frames)
    for attempt in range(200):
        if frames[-1].event == "done":
            return frames
        run = read_stream(urls(attempt), headers={"Last-Event-ID": frames[-1].id}, stop_after=cut())
        assert run.status == 200, run.body
        frames += run.frames
    raise AssertionError("the stream never finished")
