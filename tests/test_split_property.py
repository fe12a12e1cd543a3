"""Property: however the network cuts an upstream stream, the provider yields the same events
and byte-identical text. Runs the real provider and decoder over httpx with a transport that
delivers the body in hypothesis-chosen pieces."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_sse_mount import OpenAICompatible
from llm_sse_mount.request import ChatRequest, Message

text_piece = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


def openai_body(pieces: list[str], reasoning: list[str], line_ending: str) -> bytes:
    frames = [{"choices": [{"index": 0, "delta": {"reasoning_content": r}}]} for r in reasoning]
    frames += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    frames.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames.append(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    out = "".join(
        f"data: {json.dumps(f, ensure_ascii=False)}{line_ending}{line_ending}" for f in frames
    )
    return (out + f"data: [DONE]{line_ending}{line_ending}").encode()


class Pieces(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points) if b > a]


async def run(parts: list[bytes]) -> list[object]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Pieces(parts)
        )

    provider = OpenAICompatible("http://upstream/v1", "k")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        stream = await provider.open(ChatRequest((Message("user", "x"),), "m"), http)
        try:
            return [event async for event in stream.events()]
        finally:
            await stream.aclose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(text_piece, min_size=1, max_size=8),
    reasoning=st.lists(text_piece, max_size=3),
    line_ending=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_gives_the_same_events_and_identical_text(pieces, reasoning, line_ending, cuts):
    body = openai_body(pieces, reasoning, line_ending)
    whole = anyio.run(run, [body])
    split = anyio.run(run, cut(body, cuts))
    assert split == whole
    text = "".join(e.text for e in split if type(e).__name__ == "TextDelta")  # type: ignore[attr-defined]
    assert text == "".join(pieces)
    thought = "".join(e.text for e in split if type(e).__name__ == "ReasoningDelta")  # type: ignore[attr-defined]
    assert thought == "".join(reasoning)


def test_byte_by_byte_delivery_of_multibyte_text():
    pieces = ["€", "𝄞", "中文", "é\r\n"]
    body = openai_body(pieces, [], "\r\n")
    events = anyio.run(run, [body[i : i + 1] for i in range(len(body))])
    assert "".join(e.text for e in events if type(e).__name__ == "TextDelta") == "".join(pieces)  # type: ignore[attr-defined]
