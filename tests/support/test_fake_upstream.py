"""Self-tests for the test support: FakeUpstream seen through plain httpx, and the servers."""

from __future__ import annotations

import gc
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .fake_upstream import (
    Body,
    Drop,
    End,
    FakeUpstream,
    Hang,
    Respond,
    Send,
    Sleep,
    openai_stream,
    sse_bytes,
    trickle,
    zhipu_stream,
)
from .fixtures import fake_upstream as _fake_upstream_fixture
from .servers import serve, serve_subprocess

fake_upstream = _fake_upstream_fixture  # the tests below use the shared fixture

TEXT = ["Hé", "llo ", "wörld ", "你好", "🙂", "!"]


def _data_lines(raw: bytes) -> list[str]:
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def _expected_bytes(script: Sequence[object]) -> bytes:
    return b"".join(step.data for step in script if isinstance(step, Send))


# ------------------------------------------------------------------------------- builders


def test_openai_stream_parses_as_openai_chunks_with_done_last() -> None:
    script = openai_stream(TEXT, usage={"prompt_tokens": 1, "completion_tokens": 2})
    lines = _data_lines(_expected_bytes(script))
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert {(c["object"], c["model"]) for c in chunks} == {("chat.completion.chunk", "m")}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hé"}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "".join(TEXT)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_openai_stream_sends_raw_deltas_and_error_frames_as_given() -> None:
    error = {"error": {"message": "boom", "code": "1301"}}
    script = openai_stream([{"reasoning_content": "hmm"}, "hi", error], finish_reason=None)
    frames = [json.loads(line) for line in _data_lines(_expected_bytes(script))[:-1]]
    assert frames[0]["choices"][0]["delta"] == {"reasoning_content": "hmm"}
    assert frames[1]["choices"][0]["delta"] == {"content": "hi"}
    assert frames[2] == error


def test_zhipu_stream_repeats_finish_reason_and_puts_usage_in_last_choice_chunk() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    lines = _data_lines(_expected_bytes(zhipu_stream(["a", "b"], usage=usage)))
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert [c["choices"][0].get("finish_reason") for c in chunks] == [None, "stop", "stop"]
    assert chunks[-1]["usage"] == usage
    assert chunks[-1]["choices"][0]["delta"]["content"] == ""
    assert all("usage" not in c for c in chunks[:-1])


@pytest.mark.parametrize("line_ending", ["\n", "\r\n", "\r"])
def test_split_cuts_inside_characters_and_line_endings_but_keeps_bytes(line_ending: str) -> None:
    whole = _expected_bytes(openai_stream(TEXT, line_ending=line_ending))  # type: ignore[arg-type]
    pieces = [
        s.data
        for s in openai_stream(TEXT, split=1, line_ending=line_ending)  # type: ignore[arg-type]
        if isinstance(s, Send)
    ]
    assert b"".join(pieces) == whole
    assert len(pieces) == len(whole)
    cuts = [s.data for s in openai_stream(TEXT, split=[5, 3, 40]) if isinstance(s, Send)]
    assert [len(c) for c in cuts[:3]] == [3, 2, 35]


def test_sse_bytes_builds_fields_and_multiline_data() -> None:
    raw = sse_bytes([{"comment": "ping"}, {"event": "e", "id": "1", "data": "a\nb"}, "x"])
    assert raw == b": ping\n\nevent: e\nid: 1\ndata: a\ndata: b\n\ndata: x\n\n"


# ------------------------------------------------------------------------------- the wire


def test_split_stream_arrives_byte_identical(fake_upstream: FakeUpstream) -> None:
    script = openai_stream(TEXT, split=7, line_ending="\r\n")
    fake_upstream.push(script)
    with httpx.Client() as client:
        response = client.post(fake_upstream.url + "/v1/chat", json={"stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == _expected_bytes(script)
    request = fake_upstream.requests[0]
    assert (request.method, request.path, request.json) == ("POST", "/v1/chat", {"stream": True})
    assert request.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_paced_sends_are_seen_as_separate_reads(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Respond(), *[s for i in range(5) for s in (Send(b"%d" % i), Sleep(0.03))]])
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", fake_upstream.url) as response,
    ):
        reads = [piece async for piece in response.aiter_raw() if piece]
    assert b"".join(reads) == b"01234"
    assert len(reads) >= 5


def test_drop_mid_stream_is_a_protocol_error(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Respond(), Send(b"data: 1\n\n"), Sleep(0.05), Drop()])
    fake_upstream.push([Respond(), Send(b"data: 1\n\n"), Sleep(0.05), Drop(reset=True)])
    with httpx.Client() as client:
        for _ in range(2):
            got: list[bytes] = []
            with (
                client.stream("GET", fake_upstream.url) as response,
                pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
            ):
                got.extend(response.iter_raw())  # keeps what came before the error
            assert b"".join(got) == b"data: 1\n\n"
    assert [c.closed_by for c in fake_upstream.connections] == ["server", "server"]


@pytest.mark.anyio
async def test_client_leaving_a_hang_is_recorded_within_a_second(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.push(openai_stream(["hi"], ending=Hang()))
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", fake_upstream.url, json={}) as response,
    ):
        async for piece in response.aiter_raw():
            if b"[DONE]" in piece:
                break
        assert fake_upstream.open_connections() == 1
        left_at = time.monotonic()
    # leaving the block closed the response; the pooled connection is discarded, not reused
    fake_upstream.wait_closed(timeout=1.0)
    conn = fake_upstream.connections[-1]
    assert conn.closed_by == "client"
    assert conn.closed_at is not None
    assert conn.closed_at - left_at < 1.0


def test_client_leaving_during_sleep_cancels_the_script(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Respond(), Send(b"data: a\n\n"), Sleep(30), Send(b"data: never\n\n")])
    with httpx.Client() as client, client.stream("GET", fake_upstream.url) as response:
        next(response.iter_raw())
    assert fake_upstream.wait_closed(timeout=1.0) < 1.0
    assert fake_upstream.open_connections() == 0


def test_429_with_retry_after_then_default(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Body(429, b'{"error": {"code": "1302"}}', {"Retry-After": "2"})])
    fake_upstream.default = [Body(500, b"<html>oops</html>", {"content-type": "text/html"})]
    with httpx.Client() as client:
        first = client.post(fake_upstream.url)
        second = client.post(fake_upstream.url)
        third = client.post(fake_upstream.url)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert first.json() == {"error": {"code": "1302"}}
    assert (second.status_code, second.text) == (500, "<html>oops</html>")
    assert third.status_code == 500
    assert len(fake_upstream.connections) == 1, "Body responses keep the connection alive"


def test_unscripted_request_gets_a_500_and_an_error_note(fake_upstream: FakeUpstream) -> None:
    assert httpx.get(fake_upstream.url + "/x").status_code == 500
    assert fake_upstream.errors == ["no script for GET /x"]


def test_keep_alive_serves_two_requests_on_one_connection(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(openai_stream(["a"]), openai_stream(["b"], split=4))
    with httpx.Client() as client:
        bodies = [client.post(fake_upstream.url, json={"n": n}).content for n in (1, 2)]
    assert b'"a"' in bodies[0]
    assert b'"b"' in bodies[1]
    assert [r.connection_id for r in fake_upstream.wait_requests(2)] == [1, 1]
    assert len(fake_upstream.connections) == 1


def test_unchunked_body_ends_with_server_close(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Respond(chunked=False), Send(b"data: x\n\n"), End()])
    with httpx.Client() as client:
        assert client.get(fake_upstream.url).content == b"data: x\n\n"
    assert fake_upstream.connections[0].closed_by == "server"


def test_garbage_and_trickle_are_delivered_as_is(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Send(b"\xff\xfe not json\n\n")], trickle(b"d", 0.01, count=5))
    with httpx.Client() as client:
        assert client.get(fake_upstream.url).content == b"\xff\xfe not json\n\n"
        assert client.get(fake_upstream.url).content == b"ddddd"


def test_malformed_request_is_closed(fake_upstream: FakeUpstream) -> None:
    with socket.create_connection(("127.0.0.1", fake_upstream.port)) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100) == b""
    assert fake_upstream.errors
    assert "malformed" in fake_upstream.errors[0]


def test_wait_closed_refuses_a_connection_the_server_closed(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push([Respond(), Drop()])
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(fake_upstream.url)
    with pytest.raises(AssertionError, match="closed by the server"):
        fake_upstream.wait_closed(timeout=1.0)


def test_stop_closes_hanging_connections_quickly() -> None:
    up = FakeUpstream()
    up.start()
    up.push([Respond(), Send(b"data: x\n\n"), Hang()])
    with httpx.Client() as client, client.stream("GET", up.url) as response:
        pieces = response.iter_raw()
        next(pieces)
        started = time.monotonic()
        up.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            list(pieces)
    assert up.connections[0].closed_by == "server"
    gc.collect()  # a leaked socket would warn here, and warnings are errors


# ------------------------------------------------------------------------------- servers


async def _ticks(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"tick %d\n" % i

    return StreamingResponse(body(), media_type="text/plain")


def test_serve_runs_a_streaming_app_on_a_real_socket() -> None:
    app = Starlette(routes=[Route("/ticks", _ticks)])
    with serve(app) as server, httpx.Client() as client:
        with client.stream("GET", server.url + "/ticks") as response:
            lines = list(response.iter_lines())
        assert lines == ["tick 0", "tick 1", "tick 2"]
        assert server.stop(timeout=3.0) < 3.0
        assert not server.running


def test_serve_subprocess_answers_and_exits_on_sigterm() -> None:
    with serve_subprocess(
        "tests.support.test_fake_upstream:make_subprocess_app", factory=True, ready_path="/ticks"
    ) as proc:
        assert httpx.get(proc.url + "/ticks").text == "tick 0\ntick 1\ntick 2\n"
        assert proc.terminate(timeout=5.0) < 5.0
        assert proc.proc.returncode is not None


def make_subprocess_app() -> Starlette:
    """Factory for ``test_serve_subprocess_answers_and_exits_on_sigterm`` (a child process)."""
    return Starlette(routes=[Route("/ticks", _ticks)])


def test_a_matched_script_answers_only_the_request_that_carries_its_text() -> None:
    with FakeUpstream() as up:
        up.push([Body(200, b"leftover")])
        up.push([Body(200, b"mine")], match="needle")
        mine = httpx.post(up.url + "/x", content=b'{"q": "a needle here"}')
        other = httpx.post(up.url + "/x", content=b'{"q": "hay"}')
    assert (mine.text, other.text) == ("mine", "leftover")
