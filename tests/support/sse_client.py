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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_sse_mount.sse_decoder import SSEDecoder

__all__ = ["Frame", "Run", "delta_text", "read_stream", "seqs"]


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
) -> Run:
    """GET ``url`` and decode frames until the body ends (or ``stop_after`` frames)."""
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
                run.frames.append(Frame(event.id, event.event, json.loads(event.data), event.retry))
                if stop_after is not None and len(run.frames) >= stop_after:
                    return run  # leaving the with-block closes the connection mid-stream
    return run


def delta_text(frames: Sequence[Frame]) -> str:
    return "".join(f.data["text"] for f in frames if f.event == "delta")


def seqs(frames: Sequence[Frame]) -> list[int]:
    return [f.seq for f in frames]
