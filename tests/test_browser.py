"""The example page in a real Chromium: answers stream in, Stop closes the upstream, errors show
with their codes, and plain ``EventSource`` works too.

One browser per module (launching takes about a second); a fresh context and a fresh server per
test. Waits are explicit (``expect``, ``wait_closed``): nothing sleeps to synchronize.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from example_app import create_app
from llm_sse_mount import LLMMount, OpenAICompatible, Scripted

from .support.browser import launch_chromium
from .support.fake_upstream import Body, FakeUpstream, openai_stream
from .support.servers import ServerThread

pytestmark = pytest.mark.browser


ANSWER = "Streaming arrives 逐字逐句, token by token.\n第二行: line two ✨\n\n- the end 完。"
REASONING = "First think 先想一想, then answer."

# Records every distinct text of the latest answer as the page changes it (and the live figures
# shown with each), in the page itself: no polling from the test, so no intermediate state can
# be missed or invented.
RECORD_ANSWER_STATES = """
() => {
  window.__answerStates = [];
  window.__statsWhileStreaming = [];
  const last = (id) => {
    const all = document.querySelectorAll(`[data-testid=${id}]`);
    return all.length ? all[all.length - 1].textContent : "";
  };
  new MutationObserver(() => {
    const text = last("answer");
    const states = window.__answerStates;
    if (states[states.length - 1] !== text) states.push(text);
    const turn = document.querySelector("article.turn:last-of-type");
    if (turn?.dataset.status === "streaming") window.__statsWhileStreaming.push(last("stats"));
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""

Serve = Callable[..., ServerThread]


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = launch_chromium(p, chromium_path)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, serve_app: Serve) -> Iterator[Callable[..., tuple[Page, str]]]:
    """``open_page(mount, path="/")``: serve the example app with ``mount``, open ``path``.
    Fails the test on any uncaught error in the page."""
    contexts = []
    page_errors: list[str] = []

    def open_(mount: LLMMount, path: str = "/") -> tuple[Page, str]:
        server = serve_app(create_app(mount))
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(server.url + path)
        return page, server.url

    yield open_
    for context in contexts:
        context.close()
    assert not page_errors, f"errors in the page: {page_errors}"


def ask(page: Page, question: str) -> None:
    page.get_by_test_id("prompt").fill(question)
    page.get_by_test_id("send").click()


def last_turn(page: Page) -> Any:
    return page.locator("article.turn").last


def test_answer_streams_in_token_by_token_and_ends_with_the_exact_text(
    open_page: Callable[..., tuple[Page, str]], artifacts_dir: str
) -> None:
    provider = Scripted(answer=ANSWER, reasoning=REASONING, pace=0.05, jitter=0.0)
    mount = LLMMount(provider, models=["scripted-1", "scripted-2"])
    requested: list[str] = []
    page, base = open_page(mount)
    page.on("request", lambda request: requested.append(request.url))

    picker = page.get_by_test_id("model")
    expect(picker.locator("option")).to_have_text(["scripted-1", "scripted-2"])
    expect(picker).to_have_value("scripted-1")
    picker.select_option("scripted-2")
    page.evaluate(RECORD_ANSWER_STATES)

    ask(page, "How does streaming work? 请解释")
    expect(page.get_by_test_id("stop")).to_be_enabled()
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(last_turn(page)).to_have_attribute("data-status", "done")

    answer = page.get_by_test_id("answer").last
    assert answer.text_content() == ANSWER
    assert answer.inner_text().split("\n") == ANSWER.split("\n")  # newlines shown as lines
    states: list[str] = page.evaluate("window.__answerStates")
    intermediate = [s for s in states if s and s != ANSWER]
    assert len(intermediate) >= 3, states
    assert all(ANSWER.startswith(s) for s in states), states
    assert [len(s) for s in states] == sorted({len(s) for s in states}), "text only grows"
    live: list[str] = page.evaluate("window.__statsWhileStreaming")
    assert any(re.search(r"first token \d+ ms · [\d.]+ tokens/s", t) for t in live), live

    reasoning = page.get_by_test_id("reasoning").last
    assert reasoning.text_content() == REASONING
    details = page.locator("details.reasoning").last
    expect(details).to_be_visible()
    assert details.evaluate("el => el.open") is False  # folded: the answer comes first
    expect(reasoning).to_be_hidden()

    stats = page.get_by_test_id("stats").last
    expect(stats).to_have_text(re.compile(r"first token \d+ ms · [\d.]+ tokens/s · \d+ tokens"))
    expect(stats).to_contain_text(re.compile(r"\(\d+ prompt \+ \d+ completion\)"))
    expect(page.get_by_test_id("error").last).to_be_hidden()
    assert provider.last_request is not None
    assert provider.last_request.model == "scripted-2"

    # The conversation goes back with the next question (Enter sends).
    page.get_by_test_id("prompt").fill("And then?")
    page.get_by_test_id("prompt").press("Enter")
    expect(page.locator("article.turn[data-status=done]")).to_have_count(2)
    sent = provider.last_request.messages
    assert [(m.role, m.content) for m in sent] == [
        ("user", "How does streaming work? 请解释"),
        ("assistant", ANSWER),
        ("user", "And then?"),
    ]
    assert page.get_by_test_id("answer").last.text_content() == ANSWER

    # Everything the page loaded came from the app itself.
    origins = {urlsplit(url)._replace(path="", query="", fragment="").geturl() for url in requested}
    assert origins == {base}, requested
    page.screenshot(path=os.path.join(artifacts_dir, "browser-chat.png"), full_page=True)


def test_stop_keeps_the_partial_answer_and_closes_the_upstream(
    open_page: Callable[..., tuple[Page, str]], fake_upstream: FakeUpstream, artifacts_dir: str
) -> None:
    # 40 chunks 0.2 s apart: only the Stop can close the connection within the first seconds.
    chunks = ["Alpha ", "beta ", *(f"word{i} " for i in range(38))]
    fake_upstream.push(openai_stream(chunks, pace=0.2))
    provider = OpenAICompatible(base_url=fake_upstream.url + "/v1", api_key="k")
    page, _ = open_page(LLMMount(provider, model="m", retries=0))

    ask(page, "Count slowly")
    answer = page.get_by_test_id("answer").last
    expect(answer).to_have_text(re.compile(r"^Alpha beta "))
    page.get_by_test_id("stop").click()
    stopped_at = time.monotonic()

    fake_upstream.wait_closed(timeout=1.0)  # the browser's abort reached the upstream
    closed = fake_upstream.connections[-1].closed_at
    assert closed is not None
    assert closed - stopped_at < 1.0
    expect(last_turn(page)).to_have_attribute("data-status", "stopped")
    partial = answer.text_content() or ""
    full = "".join(chunks)
    assert partial.startswith("Alpha beta ")
    assert full.startswith(partial)
    assert partial != full
    expect(page.get_by_test_id("stats").last).to_contain_text("stopped")
    expect(page.get_by_test_id("error").last).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(page.get_by_test_id("stop")).to_be_disabled()
    assert answer.text_content() == partial  # nothing arrived after the stop
    page.screenshot(path=os.path.join(artifacts_dir, "browser-stopped.png"))


def test_upstream_rate_limit_shows_the_error_code_before_any_text(
    open_page: Callable[..., tuple[Page, str]], fake_upstream: FakeUpstream
) -> None:
    body = b'{"error": {"message": "Rate limit reached for requests", "code": "rate_limit"}}'
    fake_upstream.push([Body(429, body)])
    provider = OpenAICompatible(base_url=fake_upstream.url + "/v1", api_key="k")
    page, _ = open_page(LLMMount(provider, model="m", retries=0))

    ask(page, "Hello?")
    expect(last_turn(page)).to_have_attribute("data-status", "error")
    error = page.get_by_test_id("error").last
    expect(error).to_be_visible()
    expect(error).to_contain_text("upstream_rate_limited")
    expect(error).to_contain_text("HTTP 429")
    expect(error).to_contain_text("Rate limit reached for requests")
    assert page.get_by_test_id("answer").last.text_content() == ""
    expect(page.get_by_test_id("prompt")).to_have_value("Hello?")  # ready to ask again


def test_error_frame_mid_stream_keeps_the_text_and_shows_the_error(
    open_page: Callable[..., tuple[Page, str]], fake_upstream: FakeUpstream, artifacts_dir: str
) -> None:
    failure = {"error": {"message": "The model is overloaded", "code": "overloaded"}}
    script = openai_stream(["Partial ", "answer"], pace=0.05, finish_reason=None, done=False)
    # Put the error frame after the text, keeping the script's closing End() step last.
    error_frame = openai_stream([failure], finish_reason=None, done=False)[1:-1]
    fake_upstream.push([*script[:-1], *error_frame, script[-1]])
    provider = OpenAICompatible(base_url=fake_upstream.url + "/v1", api_key="k")
    page, _ = open_page(LLMMount(provider, model="m", retries=0))

    ask(page, "Go")
    expect(last_turn(page)).to_have_attribute("data-status", "error")
    assert page.get_by_test_id("answer").last.text_content() == "Partial answer"
    error = page.get_by_test_id("error").last
    expect(error).to_be_visible()
    expect(error).to_contain_text("upstream_error")
    expect(error).to_contain_text("The model is overloaded")
    expect(error).not_to_contain_text("HTTP")  # a frame inside the stream, not a refusal
    page.screenshot(path=os.path.join(artifacts_dir, "browser-error.png"))


def test_eventsource_page_streams_the_answer(
    open_page: Callable[..., tuple[Page, str]], artifacts_dir: str
) -> None:
    provider = Scripted(answer=ANSWER, reasoning="", pace=0.02, jitter=0.0)
    page, _ = open_page(LLMMount(provider), "/eventsource.html")
    page.evaluate(RECORD_ANSWER_STATES)

    ask(page, "Hello 世界")
    expect(page.locator("#turn")).to_have_attribute("data-status", "done")
    assert page.get_by_test_id("answer").text_content() == ANSWER
    states: list[str] = page.evaluate("window.__answerStates")
    assert len([s for s in states if s and s != ANSWER]) >= 3, states
    expect(page.get_by_test_id("error")).to_be_hidden()
    assert provider.last_request is not None
    assert provider.last_request.messages[-1].content == "Hello 世界"
    page.screenshot(path=os.path.join(artifacts_dir, "browser-eventsource.png"))
