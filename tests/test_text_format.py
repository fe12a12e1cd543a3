"""``?format=text``: plain answer text as unnamed SSE events, read the way ``EventSource`` reads
them (the package's spec-exact decoder), over a real socket."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.errors import UpstreamError
from llm_sse_mount.events import Done, Error, Finish, ReasoningDelta, Start, TextDelta, Usage
from llm_sse_mount.protocols.text import TextEncoder
from llm_sse_mount.providers.scripted import Emit, Fail, Hang, Pause, Scripted, ScriptStep, Text
from llm_sse_mount.sse_decoder import ServerSentEvent, SSEDecoder
from llm_sse_mount.store.base import Frame

from .support.servers import ServerThread

ANSWER = "Line one\n\n  indented: 你好 🙂\nlast line\n"
ServeApp = Callable[..., ServerThread]


def start(serve_app: ServeApp, script: Sequence[ScriptStep], **mount_kw: object) -> str:
    mount = LLMMount(provider=Scripted(script=script), model="m1", **mount_kw)  # type: ignore[arg-type]
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    return server.url + "/llm"


def read_events(response: httpx.Response) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in response.iter_bytes():
        events += decoder.feed(chunk)
    return events + decoder.close()


def get_text(url: str, **params: str) -> list[ServerSentEvent]:
    with httpx.stream("GET", url + "/chat", params={"format": "text", **params}, timeout=5) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return read_events(r)


def on_message_text(events: list[ServerSentEvent]) -> str:
    """What ``es.onmessage = e => out += e.data`` accumulates."""
    return "".join(e.data for e in events if e.event == "message")


def test_text_frames_concatenate_to_the_answer_with_newlines_and_spaces_kept(
    serve_app: ServeApp,
) -> None:
    url = start(serve_app, [Text(ANSWER, pieces=9), Emit(Finish("stop"))])
    events = get_text(url, prompt="hi")
    assert on_message_text(events) == ANSWER
    assert len([e for e in events if e.event == "message"]) == 9


def test_every_piece_is_its_own_unnamed_event_and_done_comes_last(serve_app: ServeApp) -> None:
    script: list[ScriptStep] = [
        Emit(ReasoningDelta("thinking, not shown")),
        Text("a\nb", pieces=1),
        Emit(Usage(1, 2, 3)),
        Text("c", pieces=1),
        Emit(Finish("stop")),
    ]
    events = get_text(start(serve_app, script), prompt="hi")
    assert [(e.event, e.data) for e in events] == [
        ("message", "a\nb"),
        ("message", "c"),
        ("done", "[DONE]"),
    ]
    # Native ids, so EventSource can resume.
    assert all(e.id.count(":") == 1 for e in events)


def test_post_chat_with_format_text(serve_app: ServeApp) -> None:
    url = start(serve_app, [Text("hello\nworld", pieces=3), Emit(Finish("stop"))])
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", url + "/chat?format=text", json=body, timeout=5) as r:
        events = read_events(r)
    assert on_message_text(events) == "hello\nworld"
    assert events[-1].event == "done"


def test_error_after_start_is_an_error_event_then_done(serve_app: ServeApp) -> None:
    script: list[ScriptStep] = [
        Text("partial", pieces=1),
        Fail(UpstreamError("the model fell over", code="upstream_error")),
    ]
    events = get_text(start(serve_app, script), prompt="hi")
    assert [e.event for e in events] == ["message", "error", "done"]
    assert '"code":"upstream_error"' in events[1].data
    assert events[2].data == "[DONE]"


def test_unknown_format_is_a_400_before_any_stream(serve_app: ServeApp) -> None:
    url = start(serve_app, [Text("x"), Emit(Finish("stop"))])
    r = httpx.get(url + "/chat", params={"format": "xml", "prompt": "hi"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_format"
    r = httpx.post(url + "/chat?format=xml", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.json()["error"]["code"] == "unknown_format"


def test_reconnect_with_last_event_id_resumes_as_text(serve_app: ServeApp) -> None:
    # The first reader leaves after two pieces; the stream keeps going for the resume grace.
    script: list[ScriptStep] = [
        Text("one ", pieces=1),
        Text("two ", pieces=1),
        Pause(0.3),
        Text("three\nfour", pieces=1),
        Emit(Finish("stop")),
    ]
    url = start(serve_app, script, resume_grace=5.0)
    seen: list[ServerSentEvent] = []
    with httpx.stream("GET", url + "/chat", params={"format": "text", "prompt": "hi"}) as r:
        decoder = SSEDecoder()
        for chunk in r.iter_bytes():
            seen += decoder.feed(chunk)
            if len(seen) >= 2:
                break
    headers = {"Last-Event-ID": seen[1].id}
    with httpx.stream("GET", url + "/chat?format=text", headers=headers, timeout=5) as r:
        rest = read_events(r)
    assert on_message_text(seen[:2] + rest) == "one two three\nfour"
    assert rest[-1].event == "done"
    # The explicit resume route takes the format too.
    stream_id, seq = seen[1].id.split(":")
    again = httpx.get(f"{url}/chat/{stream_id}", params={"format": "text", "after": seq})
    assert on_message_text(decode(again.content)) == "three\nfour"


def test_client_leaving_a_text_stream_cancels_it(serve_app: ServeApp) -> None:
    provider = Scripted(script=[Text("x", pieces=1), Hang()])
    mount = LLMMount(provider=provider, model="m1")
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    with httpx.stream("GET", server.url + "/llm/chat?format=text&prompt=hi") as r:
        next(r.iter_bytes())
    # The mount must notice and end the stream; the server then stops promptly.
    assert server.stop(3.0) < 3.0


# --- the encoder alone ------------------------------------------------------------------------


# Line breaks, spaces and multi-byte characters often, anything else sometimes.
TRICKY = st.sampled_from(["\r", "\n", " ", ":", "你", "🙂"])


def decode(raw: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(TRICKY | st.characters(exclude_categories=["Cs"]), min_size=1),
        min_size=1,
        max_size=8,
    )
)
@example(["a\r", "\nb"])  # a CRLF split across two deltas is still one newline
@example(["\r", "\n", "\n"])
def test_any_text_survives_except_that_carriage_returns_become_newlines(
    pieces: list[str],
) -> None:
    encoder = TextEncoder("s1")
    frames: list[Frame] = [(0, Start("s1", "m"))]
    frames += [(i + 1, TextDelta(p)) for i, p in enumerate(pieces)]
    frames.append((len(frames), Done("stop")))
    events = decode(encoder.encode(frames))
    expected = "".join(pieces).replace("\r\n", "\n").replace("\r", "\n")
    assert on_message_text(events) == expected
    assert events[-1].event == "done"


def test_error_frame_carries_the_native_json() -> None:
    raw = TextEncoder("s1").encode(
        [(3, Error("upstream_timeout", "slow", True)), (4, Done("error"))]
    )
    assert raw == (
        b"id: s1:3\nevent: error\n"
        b'data: {"code":"upstream_timeout","message":"slow","retryable":true}\n\n'
        b"id: s1:4\nevent: done\ndata: [DONE]\n\n"
    )


@pytest.mark.parametrize("text", ["\n", "\n\n", " lead", "trail\n", "a\r\nb"])
def test_edge_texts_encode_to_the_expected_lines(text: str) -> None:
    events = decode(TextEncoder("s").encode([(1, TextDelta(text))]))
    assert len(events) == 1
    assert events[0].data == text.replace("\r\n", "\n")
