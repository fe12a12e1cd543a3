"""Resume over real sockets, one server, the in-memory store (DESIGN.md "Resume").

A client cut mid-answer reconnects with ``Last-Event-ID: <stream_id>:<seq>`` (header, or the
``last_event_id`` query parameter, or ``GET /chat/{stream_id}``) and gets exactly the frames
after ``seq``: the text it ends with is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from llm_sse_mount import LLMMount, OpenAICompatible
from llm_sse_mount.protocols.native import RECONNECT_MS

from .support.fake_upstream import FakeUpstream, openai_stream
from .support.resume_app import ANSWER, host_app, scripted
from .support.servers import ServerThread
from .support.sse_client import Frame, delta_text, read_stream, resume_until_done, seqs
from .support.sse_client import assert_complete as complete

PACE = 0.004

Serve = Callable[..., ServerThread]


def start_server(serve_app: Serve, **mount: Any) -> str:
    mount.setdefault("provider", scripted(PACE))
    return serve_app(host_app(LLMMount(**mount))).url + "/llm"


def assert_complete(frames: list[Frame]) -> None:
    complete(frames, ANSWER)


def test_uninterrupted_run_is_the_reference(serve_app: Serve) -> None:
    url = start_server(serve_app)
    run = read_stream(url + "/chat", params={"prompt": "hi"})
    assert_complete(run.frames)
    # retry rides in the first frame's own block: every frame still has id, event and data.
    assert run.frames[0].retry == RECONNECT_MS
    assert all(f.retry is None for f in run.frames[1:])
    assert all(f.id and f.event for f in run.frames)


def test_resume_mid_stream_continues_exactly_where_it_stopped(serve_app: Serve) -> None:
    url = start_server(serve_app, resume_grace=5)
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=7)
    assert first.frames[-1].seq == 6
    time.sleep(0.1)  # the producer keeps going meanwhile: part of the rest is replayed
    rest = read_stream(url + "/chat", headers={"Last-Event-ID": first.last_id})
    assert rest.frames[0].seq == 7
    assert_complete(first.frames + rest.frames)


def test_many_cuts_at_random_frames_lose_and_repeat_nothing(serve_app: Serve) -> None:
    url = start_server(serve_app, resume_grace=5)
    rng = random.Random(6)
    cuts = iter([rng.randint(1, 15) for _ in range(10)])
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=next(cuts))
    frames = resume_until_done(first, lambda _: url + "/chat", lambda: next(cuts, None))
    assert_complete(frames)


def test_last_event_id_query_parameter_resumes_like_the_header(serve_app: Serve) -> None:
    url = start_server(serve_app, resume_grace=5)
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=5)
    rest = read_stream(url + "/chat", params={"last_event_id": first.last_id})
    assert_complete(first.frames + rest.frames)


def test_get_chat_stream_id_resumes_with_after_or_the_header(serve_app: Serve) -> None:
    url = start_server(serve_app, resume_grace=5)
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=4)
    sid = first.frames[0].stream_id
    by_after = read_stream(f"{url}/chat/{sid}", params={"after": "3"})
    assert_complete(first.frames + by_after.frames)
    by_header = read_stream(f"{url}/chat/{sid}", headers={"Last-Event-ID": f"{sid}:3"})
    assert by_header.frames == by_after.frames
    whole = read_stream(f"{url}/chat/{sid}")  # no position: from the start
    assert_complete(whole.frames)


def test_several_readers_follow_one_stream_live(serve_app: Serve) -> None:
    url = start_server(serve_app, resume_grace=5)
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=3)
    sid = first.frames[0].stream_id
    # Three readers at once, joining while it is still being produced, from different places.
    with ThreadPoolExecutor(3) as pool:
        runs = list(
            pool.map(
                lambda a: read_stream(f"{url}/chat/{sid}", params={"after": a}), ("-1", "2", "-1")
            )
        )
    assert runs[0].frames == runs[2].frames
    assert_complete(runs[0].frames)
    assert_complete(first.frames + runs[1].frames)


def test_reconnect_after_done_gets_204(serve_app: Serve) -> None:
    url = start_server(serve_app)
    run = read_stream(url + "/chat", params={"prompt": "hi"})
    done_id = run.last_id
    again = read_stream(url + "/chat", headers={"Last-Event-ID": done_id})
    assert again.status == 204
    assert again.body == b""
    sid = run.frames[0].stream_id
    assert (
        httpx.get(f"{url}/chat/{sid}", params={"after": str(run.frames[-1].seq)}).status_code == 204
    )
    # One before done: exactly the done frame.
    before = read_stream(url + "/chat", headers={"Last-Event-ID": run.frames[-2].id})
    assert [f.event for f in before.frames] == ["done"]


def test_unknown_or_malformed_stream_ids_are_clear_errors(serve_app: Serve) -> None:
    url = start_server(serve_app)
    for response in (
        httpx.get(url + "/chat", headers={"Last-Event-ID": "nosuchstream:3"}),
        httpx.get(url + "/chat", params={"last_event_id": "nosuchstream:3"}),
        httpx.get(url + "/chat/nosuchstream", params={"after": "3"}),
        httpx.get(url + "/chat", headers={"Last-Event-ID": "a:b:c*:3"}),
        httpx.get(url + "/chat", headers={"Last-Event-ID": ":3"}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "stream_not_found"
    bad = httpx.get(url + "/chat", headers={"Last-Event-ID": "garbage"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_last_event_id"


def test_expired_stream_is_404(serve_app: Serve) -> None:
    url = start_server(serve_app, retention=0.2)
    run = read_stream(url + "/chat", params={"prompt": "hi"})
    time.sleep(0.4)
    late = httpx.get(url + "/chat", headers={"Last-Event-ID": run.frames[3].id})
    assert late.status_code == 404
    assert late.json()["error"]["code"] == "stream_not_found"


# --- the resume grace: does the upstream keep generating while nobody listens? -------------

CHUNKS = [f"chunk {i:02d}, " for i in range(40)]


def openai_mount(up: FakeUpstream, **kwargs: Any) -> dict[str, Any]:
    up.push(openai_stream(CHUNKS, pace=0.05))
    return {"provider": OpenAICompatible(up.url + "/v1", "sk-test", default_model="m"), **kwargs}


def test_with_grace_the_upstream_waits_for_the_reconnect(
    serve_app: Serve, fake_upstream: FakeUpstream
) -> None:
    url = start_server(serve_app, **openai_mount(fake_upstream, resume_grace=3))
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=4)
    time.sleep(0.5)
    assert fake_upstream.open_connections() == 1, "the upstream was closed within the grace"
    rest = read_stream(url + "/chat", headers={"Last-Event-ID": first.last_id})
    frames = first.frames + rest.frames
    assert delta_text(frames) == "".join(CHUNKS)
    assert seqs(frames) == list(range(len(frames)))
    assert frames[-1].data == {"finish_reason": "stop"}


def test_with_grace_an_abandoned_upstream_is_closed_after_the_grace(
    serve_app: Serve, fake_upstream: FakeUpstream
) -> None:
    grace = 0.6
    url = start_server(serve_app, **openai_mount(fake_upstream, resume_grace=grace))
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=3)
    left = time.monotonic()
    fake_upstream.wait_closed(timeout=grace + 1.5)
    took = time.monotonic() - left
    assert grace - 0.1 <= took < grace + 1.0, took
    # A reconnect after that still gets a proper ending: done{cancelled}.
    rest = read_stream(url + "/chat", headers={"Last-Event-ID": first.last_id})
    assert rest.frames[-1].event == "done"
    assert rest.frames[-1].data == {"finish_reason": "cancelled"}


def test_without_grace_leaving_closes_the_upstream_at_once(
    serve_app: Serve, fake_upstream: FakeUpstream
) -> None:
    url = start_server(serve_app, **openai_mount(fake_upstream))  # resume_grace=0, the default
    read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=3)
    left = time.monotonic()
    fake_upstream.wait_closed(timeout=1.0)
    assert time.monotonic() - left < 0.5


@pytest.mark.parametrize("after", ["-1", "0"])
def test_resume_right_at_the_start(serve_app: Serve, after: str) -> None:
    url = start_server(serve_app, resume_grace=5)
    first = read_stream(url + "/chat", params={"prompt": "hi"}, stop_after=1)
    sid = first.frames[0].stream_id
    rest = read_stream(f"{url}/chat/{sid}", params={"after": after})
    frames = rest.frames if after == "-1" else first.frames + rest.frames
    assert_complete(frames)
