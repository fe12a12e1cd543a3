"""Scripted: the keyless default provider, and the scripts tests drive the relay with."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sse_mount.errors import ConfigError, RateLimited, UpstreamError, UpstreamTimeout
from llm_sse_mount.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.providers.base import Provider, UpstreamStream
from llm_sse_mount.providers.scripted import (
    Emit,
    Fail,
    Hang,
    Pause,
    Scripted,
    ScriptedStream,
    ScriptStep,
    Text,
    split_pieces,
)
from llm_sse_mount.request import ChatRequest, Message

CJK = re.compile(r"[\u4e00-\u9fff]")
QUESTION = "What is SSE? 什么是服务器推送事件？"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def chat(question: str = QUESTION, *, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", question)),
        model="scripted-1",
        max_tokens=max_tokens,
    )


async def collect(stream: UpstreamStream) -> list[ProviderEvent]:
    return [event async for event in stream.events()]


async def answer(
    provider: Scripted, http: httpx.AsyncClient, request: ChatRequest | None = None
) -> list[ProviderEvent]:
    stream = await provider.open(request or chat(), http)
    try:
        return await collect(stream)
    finally:
        await stream.aclose()


def text_of(events: Sequence[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: Sequence[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


# --- the default answer -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_default_answer_reasons_then_answers_in_english_and_chinese(
    http: httpx.AsyncClient,
) -> None:
    events = await answer(Scripted(pace=0), http)
    text, reasoning = text_of(events), reasoning_of(events)
    assert reasoning
    assert CJK.search(text)
    assert re.search(r"[A-Za-z]{4,}", text)
    assert "\n" in text
    assert len(re.findall(r"^\d\. ", text, re.MULTILINE)) == 3
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])


@pytest.mark.anyio
async def test_default_answer_echoes_the_last_user_question(http: httpx.AsyncClient) -> None:
    events = await answer(Scripted(pace=0), http, chat("Why is the sky blue? 天空为什么是蓝色的"))
    assert "Why is the sky blue? 天空为什么是蓝色的" in text_of(events)


@pytest.mark.anyio
async def test_default_answer_streams_token_sized_pieces(http: httpx.AsyncClient) -> None:
    events = await answer(Scripted(pace=0), http)
    pieces = [e.text for e in events if isinstance(e, (TextDelta, ReasoningDelta))]
    assert len(pieces) > 50
    assert max(len(p.strip()) for p in pieces) <= 10
    assert all(len(p.strip()) <= 2 for p in pieces if CJK.search(p))


@pytest.mark.anyio
async def test_default_answer_ends_with_usage_then_stop(http: httpx.AsyncClient) -> None:
    events = await answer(Scripted(pace=0), http)
    *body, usage, finish = events
    assert finish == Finish("stop")
    assert isinstance(usage, Usage)
    assert usage.completion_tokens == len(body)
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.anyio
async def test_prompt_tokens_grow_with_the_request(http: httpx.AsyncClient) -> None:
    async def prompt_tokens(question: str) -> int:
        usage = (await answer(Scripted(pace=0), http, chat(question)))[-2]
        assert isinstance(usage, Usage)
        return usage.prompt_tokens

    assert await prompt_tokens("hi " * 400) > await prompt_tokens("hi") + 200


@pytest.mark.anyio
async def test_configured_answer_and_reasoning_are_streamed_exactly(
    http: httpx.AsyncClient,
) -> None:
    configured = "Line one,  spaced.\r\n\n第二行：中文标点！{question} ✨🚀 end \t"
    thinking = "Hmm… 让我想想。"
    events = await answer(Scripted(answer=configured, reasoning=thinking, pace=0), http)
    assert text_of(events) == configured
    assert reasoning_of(events) == thinking


@pytest.mark.anyio
async def test_empty_reasoning_leaves_the_reasoning_part_out(http: httpx.AsyncClient) -> None:
    events = await answer(Scripted(reasoning="", answer="Just this.", pace=0), http)
    assert not any(isinstance(e, ReasoningDelta) for e in events)
    assert text_of(events) == "Just this."


@pytest.mark.anyio
async def test_usage_can_be_left_out(http: httpx.AsyncClient) -> None:
    events = await answer(Scripted(usage=False, answer="ok", reasoning="", pace=0), http)
    assert events == [TextDelta("ok"), Finish("stop")]


@pytest.mark.anyio
async def test_max_tokens_stops_after_that_many_pieces_with_length(
    http: httpx.AsyncClient,
) -> None:
    provider = Scripted(reasoning="", answer="one two three four five six", pace=0)
    events = await answer(provider, http, chat(max_tokens=4))
    *body, usage, finish = events
    assert text_of(body) == "one two three four"
    assert finish == Finish("length")
    assert isinstance(usage, Usage)
    assert usage.completion_tokens == 4


@pytest.mark.anyio
async def test_max_tokens_counts_reasoning_pieces_too(http: httpx.AsyncClient) -> None:
    provider = Scripted(reasoning="a b c", answer="x y z", pace=0, usage=False)
    events = await answer(provider, http, chat(max_tokens=4))
    assert events == [
        ReasoningDelta("a"),
        ReasoningDelta(" b"),
        ReasoningDelta(" c"),
        TextDelta("x"),
        Finish("length"),
    ]


@pytest.mark.anyio
async def test_max_tokens_at_least_the_answer_is_a_normal_stop(http: httpx.AsyncClient) -> None:
    provider = Scripted(reasoning="", answer="one two", pace=0, usage=False)
    assert (await answer(provider, http, chat(max_tokens=2)))[-1] == Finish("stop")


# --- pacing -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_pieces_arrive_about_pace_apart(http: httpx.AsyncClient) -> None:
    provider = Scripted(reasoning="", answer="a b c d e f g h i j", pace=0.02, jitter=0)
    stream = await provider.open(chat(), http)
    arrivals: list[float] = []
    start = time.monotonic()
    async for event in stream.events():
        if isinstance(event, TextDelta):
            arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 10
    # Ten pauses of 20 ms: generous bounds, CI machines are slow but not 10x late on average.
    assert 0.15 <= arrivals[-1] <= 1.0
    assert arrivals[0] >= 0.015


@pytest.mark.anyio
async def test_jitter_stays_within_its_fraction_and_a_seed_repeats_it(
    http: httpx.AsyncClient,
) -> None:
    def pauses(stream: ScriptedStream) -> list[float]:
        return [s.seconds for s in stream.steps if isinstance(s, Pause)]

    provider = Scripted(pace=0.1, jitter=0.5, seed=7)
    first = pauses(await provider.open(chat(), http))
    again = pauses(await provider.open(chat(), http))
    other = pauses(await Scripted(pace=0.1, jitter=0.5, seed=8).open(chat(), http))
    assert first == again
    assert first != other
    assert all(0.05 <= p <= 0.15 for p in first)
    assert max(first) - min(first) > 0.05  # it does vary


# --- scripts ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_script_runs_exactly_its_steps(http: httpx.AsyncClient) -> None:
    tool = ToolCallDelta(0, "call_1", "get_weather", '{"city":')
    script: list[ScriptStep] = [
        Emit(ReasoningDelta("think")),
        Text("Hello, 世界"),
        Emit(tool),
        Emit(ToolCallDelta(0, None, None, '"北京"}')),
        Emit(Finish("tool_calls")),
    ]
    events = await answer(Scripted(script=script), http)
    assert events[0] == ReasoningDelta("think")
    assert text_of(events) == "Hello, 世界"
    assert events[-3:] == [tool, ToolCallDelta(0, None, None, '"北京"}'), Finish("tool_calls")]
    assert not any(isinstance(e, Usage) for e in events)  # a script adds nothing of its own


@pytest.mark.anyio
async def test_script_without_finish_just_ends(http: httpx.AsyncClient) -> None:
    assert await answer(Scripted(script=[Text("cut", pieces=1)]), http) == [TextDelta("cut")]


@pytest.mark.anyio
async def test_text_step_splits_into_the_requested_number_of_pieces(
    http: httpx.AsyncClient,
) -> None:
    events = await answer(Scripted(script=[Text("abcdefg", pieces=3, reasoning=True)]), http)
    assert events == [ReasoningDelta("abc"), ReasoningDelta("de"), ReasoningDelta("fg")]
    assert Text("ab", pieces=5).split() == ["a", "b"]
    assert Text("", pieces=2).split() == []


def test_text_step_rejects_zero_pieces() -> None:
    with pytest.raises(ConfigError):
        Text("x", pieces=0)


@pytest.mark.anyio
async def test_callable_script_gets_the_request(http: httpx.AsyncClient) -> None:
    def echo(request: ChatRequest) -> list[ScriptStep]:
        return [Text(request.messages[-1].content), Emit(Finish("stop"))]

    events = await answer(Scripted(script=echo), http, chat("ping 乒乓"))
    assert text_of(events) == "ping 乒乓"


@pytest.mark.anyio
async def test_provider_records_opens_and_the_last_request(http: httpx.AsyncClient) -> None:
    provider = Scripted(pace=0)
    first, second = chat("one"), chat("two")
    await answer(provider, http, first)
    await answer(provider, http, second)
    assert provider.opened == 2
    assert provider.last_request is second


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fail_open_raises_before_any_stream(http: httpx.AsyncClient) -> None:
    provider = Scripted(fail_open=RateLimited("slow down", retry_after=2.5))
    for attempt in (1, 2):
        with pytest.raises(RateLimited) as info:
            await provider.open(chat(), http)
        assert info.value.status == 429
        assert info.value.retry_after == 2.5
        assert provider.opened == attempt  # failed opens count: retry loops can be checked


@pytest.mark.anyio
async def test_fail_open_keeps_a_custom_code_and_its_catalogue_status(
    http: httpx.AsyncClient,
) -> None:
    error = UpstreamError("bad gateway", code="upstream_unreachable")
    with pytest.raises(UpstreamError) as info:
        await Scripted(fail_open=error).open(chat(), http)
    assert (info.value.code, info.value.status, info.value.message) == (
        "upstream_unreachable",
        502,
        "bad gateway",
    )


@pytest.mark.anyio
async def test_fail_mid_stream_raises_after_the_preceding_events(
    http: httpx.AsyncClient,
) -> None:
    provider = Scripted(
        script=[Text("partial answer"), Fail(UpstreamTimeout("upstream went quiet"))]
    )
    stream = await provider.open(chat(), http)
    seen: list[ProviderEvent] = []

    async def read() -> None:
        async for event in stream.events():
            seen.append(event)

    with pytest.raises(UpstreamTimeout, match="upstream went quiet"):
        await read()
    assert text_of(seen) == "partial answer"


# --- closing and cancelling -------------------------------------------------------------------


@pytest.mark.anyio
async def test_aclose_stops_a_hang_within_half_a_second(http: httpx.AsyncClient) -> None:
    stream = await Scripted(script=[Text("before"), Hang(), Text("never")]).open(chat(), http)
    seen: list[ProviderEvent] = []
    ended = anyio.Event()

    async def read() -> None:
        async for event in stream.events():
            seen.append(event)
        ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.sleep(0.05)
        assert seen == [TextDelta("before")]
        assert not ended.is_set()
        closed_at = time.monotonic()
        await stream.aclose()
        with anyio.fail_after(1):
            await ended.wait()
        assert time.monotonic() - closed_at < 0.5
    assert stream.closed
    assert seen == [TextDelta("before")]


@pytest.mark.anyio
async def test_aclose_cuts_a_long_pause_short(http: httpx.AsyncClient) -> None:
    stream = await Scripted(script=[Pause(60), Text("late")]).open(chat(), http)
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.aclose)
        with anyio.fail_after(1):
            assert await collect(stream) == []


@pytest.mark.anyio
async def test_cancelling_the_reader_ends_a_hang(http: httpx.AsyncClient) -> None:
    stream = await Scripted(script=[Hang()]).open(chat(), http)
    start = time.monotonic()
    with anyio.move_on_after(0.05) as scope:
        await collect(stream)
    assert scope.cancelled_caught
    assert time.monotonic() - start < 0.5
    await stream.aclose()


@pytest.mark.anyio
async def test_aclose_mid_answer_stops_the_default_stream(http: httpx.AsyncClient) -> None:
    stream = await Scripted(pace=0.01).open(chat(), http)
    seen = 0
    async for _ in stream.events():
        seen += 1
        if seen == 3:
            await stream.aclose()
    assert seen == 3
    await stream.aclose()  # idempotent
    assert stream.closed


@pytest.mark.anyio
async def test_events_can_be_read_only_once(http: httpx.AsyncClient) -> None:
    stream = await Scripted(pace=0).open(chat(), http)
    await collect(stream)
    with pytest.raises(RuntimeError):
        stream.events()


# --- the provider contract --------------------------------------------------------------------


@pytest.mark.anyio
async def test_scripted_satisfies_the_provider_protocols(http: httpx.AsyncClient) -> None:
    provider: Provider = Scripted(default_model="demo-2")
    assert isinstance(provider, Provider)
    assert provider.name == "scripted"
    assert provider.default_model == "demo-2"
    assert provider.client is None
    assert provider.secrets() == ()
    stream = await provider.open(chat(), http)
    assert isinstance(stream, UpstreamStream)
    await stream.aclose()


@pytest.mark.parametrize("kwargs", [{"pace": -0.1}, {"jitter": 1.5}, {"jitter": -0.1}])
def test_bad_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Scripted(**kwargs)  # type: ignore[arg-type]


# --- splitting --------------------------------------------------------------------------------


def test_split_pieces_cuts_words_punctuation_newlines_and_cjk() -> None:
    assert split_pieces("Hello, 世界和平!\n\nBye") == [
        "Hello",
        ",",
        " 世界",
        "和",
        "平",
        "!",
        "\n\n",
        "Bye",
    ]


@given(st.text())
def test_split_pieces_never_loses_or_adds_a_character(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(pieces)
