"""Resume in a real browser: Chromium's own ``EventSource`` reconnects with ``Last-Event-ID``
after a proxy cuts the answer mid-stream, and the page ends with exactly the full answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_sse_mount import LLMMount

from .support.browser import launch_chromium
from .support.cutting_proxy import CuttingProxy
from .support.resume_app import ANSWER, host_app, scripted
from .support.servers import ServerThread

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw, chromium_path)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_eventsource_resumes_after_a_cut_with_exactly_the_full_answer(
    page: Any, serve_app: Callable[..., ServerThread]
) -> None:
    server = serve_app(host_app(LLMMount(provider=scripted(0.01), resume_grace=5)))
    # ~1.5 KB: headers and some frames, then the cut lands inside a frame, mid-answer.
    with CuttingProxy(server.port, path=b"/llm/chat", cut_after=1500) as proxy:
        page.goto(proxy.url + "/?prompt=hi")
        page.wait_for_function("window.finished === true", timeout=15_000)
        assert proxy.cuts == 1, "the proxy never cut the stream"
        answer = page.evaluate("window.answer")
        frames = page.evaluate("window.frames_seen")
        opens = page.evaluate("window.opens")
    assert opens == 2  # the first connection, and EventSource's own reconnect
    assert answer == ANSWER
    seqs = [int(f["id"].rpartition(":")[2]) for f in frames]
    assert seqs == list(range(len(frames))), "a frame was lost or repeated"
    assert [f["event"] for f in frames].count("done") == 1
    assert frames[-1]["data"] == {"finish_reason": "stop"}


def test_eventsource_stops_reconnecting_after_done(
    page: Any, serve_app: Callable[..., ServerThread]
) -> None:
    """A page that never closes its EventSource: after done the server ends the response, the
    browser reconnects with the done frame's id, gets 204 and stays closed."""
    server = serve_app(host_app(LLMMount(provider=scripted(0.0))))
    page.goto(server.url + "/?prompt=hi&keep=1")
    page.wait_for_function("window.source.readyState === 2", timeout=10_000)
    assert page.evaluate("window.answer") == ANSWER
    assert page.evaluate("window.opens") == 1
    page.wait_for_timeout(1500)  # longer than retry: no reconnect loop
    assert page.evaluate("window.opens") == 1
    assert page.evaluate("window.source.readyState") == 2
