"""Resume across worker processes that share Redis, and what happens when a process or Redis
itself goes away.

Two separate uvicorn processes serve ``tests.support.resume_app`` with the same
``LLM_SSE_STORE`` and key prefix: a stream started on one continues on the other.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from llm_sse_mount import LLMMount
from llm_sse_mount.store.redis import RedisStore

from .conftest import unavailable
from .support.resume_app import ANSWER, host_app, scripted
from .support.servers import ServerProcess, ServerThread, free_port, serve, serve_subprocess
from .support.sse_client import (
    Frame,
    assert_complete,
    delta_text,
    read_stream,
    resume_until_done,
    seqs,
)

pytestmark = pytest.mark.redis

APP = "tests.support.resume_app:make_app"
LEASE_TTL = 1.0


def worker_env(redis_url: str, prefix: str, pace: float) -> dict[str, str]:
    return {
        "LLM_SSE_STORE": redis_url,
        "LLM_SSE_STORE_PREFIX": prefix,
        # The cut connection's worker must keep producing until the reconnect lands elsewhere.
        "LLM_SSE_RESUME_GRACE": "5",
        "LLM_SSE_STORE_LEASE_TTL": str(LEASE_TTL),
        "RESUME_TEST_PACE": str(pace),
    }


@contextlib.contextmanager
def worker(env: dict[str, str]) -> Iterator[ServerProcess]:
    with serve_subprocess(APP, env=env, factory=True, ready_path="/llm/health") as proc:
        yield proc


def delete_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def prefix(redis_url: str) -> Iterator[str]:
    prefix = f"llm_sse_test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture(scope="module")
def two_workers(redis_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    env = worker_env(redis_url, prefix, pace=0.01)
    with worker(env) as a, worker(env) as b:
        assert a.pid != b.pid
        yield a.url + "/llm", b.url + "/llm"


def test_a_stream_cut_on_one_worker_continues_on_the_other(two_workers: tuple[str, str]) -> None:
    a, b = two_workers
    reference = read_stream(b + "/chat", params={"prompt": "hi"})
    assert_complete(reference.frames, ANSWER)

    first = read_stream(a + "/chat", params={"prompt": "hi"}, stop_after=8)
    rest = read_stream(b + "/chat", headers={"Last-Event-ID": first.last_id})
    assert rest.frames[0].seq == 8
    assert_complete(first.frames + rest.frames, ANSWER)
    assert delta_text(first.frames + rest.frames) == delta_text(reference.frames)


def test_ten_cuts_at_random_frames_alternating_workers(two_workers: tuple[str, str]) -> None:
    a, b = two_workers
    rng = random.Random(66)
    cuts = iter([rng.randint(1, 20) for _ in range(10)])
    first = read_stream(a + "/chat", params={"prompt": "hi"}, stop_after=next(cuts))
    frames = resume_until_done(
        first, lambda attempt: (b, a)[attempt % 2] + "/chat", lambda: next(cuts, None)
    )
    assert_complete(frames, ANSWER)


def test_fetch_style_resume_by_stream_id_on_the_other_worker(two_workers: tuple[str, str]) -> None:
    a, b = two_workers
    first = read_stream(a + "/chat", params={"prompt": "hi"}, stop_after=5)
    sid = first.frames[0].stream_id
    rest = read_stream(f"{b}/chat/{sid}", params={"after": str(first.frames[-1].seq)})
    assert_complete(first.frames + rest.frames, ANSWER)
    # The answer is finished now: both workers say 204 to a client that has the done frame.
    for url in (a, b):
        response = httpx.get(url + "/chat", headers={"Last-Event-ID": rest.last_id})
        assert response.status_code == 204
    assert httpx.get(b + "/chat/nosuchstream").status_code == 404


def test_killing_the_producing_worker_ends_readers_with_stream_lost(
    redis_url: str, prefix: str, two_workers: tuple[str, str]
) -> None:
    _, reader_url = two_workers
    # A slow answer (about 8 s) on a worker of its own, so it is still running when killed.
    with worker(worker_env(redis_url, prefix, pace=0.05)) as producer:
        first = read_stream(producer.url + "/llm/chat", params={"prompt": "hi"}, stop_after=3)
        seen: list[tuple[float, Frame]] = []
        follower = threading.Thread(
            target=read_stream,
            args=(reader_url + "/chat",),
            kwargs={
                "headers": {"Last-Event-ID": first.last_id},
                "on_frame": lambda f: seen.append((time.monotonic(), f)),
                "timeout": 15.0,
            },
            daemon=True,
        )
        follower.start()
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) >= 3, "the other worker does not follow the live stream"
        producer.kill()  # SIGKILL: no done, no lease release, nothing
        killed = time.monotonic()
        follower.join(LEASE_TTL + 6)
        assert not follower.is_alive(), "the reader was left waiting for a dead producer"

    frames = first.frames + [f for _, f in seen]
    assert seqs(frames) == list(range(len(frames)))
    assert [f.event for f in frames[-2:]] == ["error", "done"]
    assert frames[-2].data["code"] == "stream_lost"
    assert frames[-2].data["retryable"] is True
    assert frames[-1].data == {"finish_reason": "error"}
    assert ANSWER.startswith(delta_text(frames))
    detected = seen[-1][0] - killed
    print(f"stream_lost detected {detected:.2f} s after SIGKILL (lease_ttl={LEASE_TTL})")
    assert detected < LEASE_TTL + 2.5, detected
    # The loss is stored like any ending: a reconnect from before it gets the same frames.
    again = read_stream(reader_url + "/chat", headers={"Last-Event-ID": frames[-3].id})
    assert [(f.id, f.event, f.data) for f in again.frames] == [
        (f.id, f.event, f.data) for f in frames[-2:]
    ]


# --- Redis trouble, in-process ---------------------------------------------------------------


def test_unreachable_redis_is_a_503_before_the_stream() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    app = host_app(LLMMount(provider=scripted(0.0), store=store))
    with serve(app) as server:
        response = httpx.get(server.url + "/llm/chat", params={"prompt": "hi"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        resume = httpx.get(server.url + "/llm/chat", headers={"Last-Event-ID": "abc:3"})
        assert resume.status_code == 503


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, so it can be killed without disturbing anyone."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        deadline = time.monotonic() + 5
        while True:
            try:
                redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait()


def test_redis_going_away_mid_stream_ends_the_reader_with_an_error(
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, redis_proc = private_redis
    app = host_app(LLMMount(provider=scripted(0.02), store=RedisStore(url)))
    server: ServerThread
    with serve(app) as server:
        seen: list[tuple[float, Frame]] = []
        reader = threading.Thread(
            target=read_stream,
            args=(server.url + "/llm/chat",),
            kwargs={"params": {"prompt": "hi"}, "on_frame": lambda f: seen.append((0.0, f))},
            daemon=True,
        )
        reader.start()
        deadline = time.monotonic() + 5
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        redis_proc.kill()
        killed = time.monotonic()
        reader.join(8)
        assert not reader.is_alive(), "the reader hangs after Redis went away"
        took = time.monotonic() - killed
    frames = [f for _, f in seen]
    assert [f.event for f in frames[-2:]] == ["error", "done"]
    assert frames[-2].data["code"] == "store_unavailable"
    assert frames[-1].data == {"finish_reason": "error"}
    assert seqs(frames) == list(range(len(frames)))
    print(f"store_unavailable reached the client {took:.2f} s after Redis was killed")
    assert took < 3, took
