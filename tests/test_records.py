"""The one ``on_complete`` record of a stream that failed between opening the upstream and its
first frame (the store refused it): it names the provider that really served it, and its
duration counts from admission, as every other record's does."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, MemoryStore, OpenAICompatible, Scripted, StreamInterrupted
from llm_sse_mount.core.records import CompletionRecord
from llm_sse_mount.events import StreamEvent

from .support.fake_upstream import Body, FakeUpstream, Sleep


class StoreDown(MemoryStore):
    """A store that cannot take new streams (Redis is down, say)."""

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        raise StreamInterrupted("the stream store is unavailable", code="store_unavailable")

    async def append(self, stream_id: str, events: Sequence[StreamEvent]) -> int:
        raise AssertionError("nothing may be appended to a stream that was never created")


def test_a_store_failure_records_the_fallback_that_served_and_the_real_duration(
    serve_app, fake_upstream: FakeUpstream
) -> None:
    # The main provider takes 0.4 s to fail (not retryable: a 502 after retries=0), so the
    # fallback opens the stream; then the store refuses it.
    fake_upstream.push([Sleep(0.4), Body(500, b'{"error": {"message": "down"}}')])
    records: list[CompletionRecord] = []
    mount = LLMMount(
        provider=OpenAICompatible(fake_upstream.url + "/v1", "sk-test"),
        fallbacks=[Scripted(default_model="scripted-1")],
        model="m",
        retries=0,
        store=StoreDown(),
        on_complete=records.append,
    )
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    response = httpx.post(
        server.url + "/llm/chat", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    deadline = time.monotonic() + 3
    while not records and time.monotonic() < deadline:
        time.sleep(0.01)
    (record,) = records
    assert record.provider == "scripted"  # the fallback served it, not the main provider
    assert record.error_code == "store_unavailable" and record.finish_reason == "error"
    assert record.duration >= 0.4  # from admission, not from the failure


class Broken(Scripted):
    """A provider with a bug: opening it raises something that is no LLMSSEError."""

    async def open(self, request, http):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in a provider")


def test_a_provider_bug_while_opening_is_a_json_error_and_one_record(serve_app) -> None:
    records: list[CompletionRecord] = []
    mount = LLMMount(provider=Broken(), on_complete=records.append)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(server.url + "/llm/chat", json=body)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "a bug" not in response.text  # the exception's text stays in the log
    deadline = time.monotonic() + 3
    while not records and time.monotonic() < deadline:
        time.sleep(0.01)
    (record,) = records
    assert (record.error_code, record.finish_reason) == ("internal_error", "error")
    # ...and the server goes on serving.
    assert httpx.get(server.url + "/llm/health").status_code == 200
