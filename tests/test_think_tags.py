"""Inline ``<think>`` reasoning: the splitter alone, then the OpenAI-compatible provider over a
real socket, where hypothesis cuts both the content deltas (the tokenizer) and the bytes (the
network) anywhere and the reasoning and answer must come out the same."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sse_mount.events import Finish, ProviderEvent, ReasoningDelta, TextDelta
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.registry import provider_from_env
from llm_sse_mount.providers.think_tags import ThinkTagSplitter
from llm_sse_mount.providers.zhipu import Zhipu
from llm_sse_mount.request import ChatRequest, Message

from .support.fake_upstream import FakeUpstream, openai_stream, zhipu_stream

REASONING = "The user says 你好; answer 🙂, maybe with <b> or </th>."
ANSWER = "你好! Use a <think> tag like <think>this</think> 🙂"
CONTENT = f"  \n<think>{REASONING}</think>\n\n{ANSWER}"


def split(pieces: Sequence[str]) -> tuple[str, str]:
    """(reasoning, answer) from feeding ``pieces`` through one splitter."""
    splitter = ThinkTagSplitter()
    events = [e for p in pieces for e in splitter.feed(p)] + list(splitter.flush())
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer


def chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["<think>a</think>b"], ("a", "b")),
        (["<th", "ink>", "a", "</th", "ink>", "b"], ("a", "b")),
        (chars("<think>abc</think>\n\nanswer"), ("abc", "answer")),
        (["\n  <think>", "x</think>y"], ("x", "y")),
        (["<think>never closed"], ("never closed", "")),
        (["<think>cut at </thi"], ("cut at </thi", "")),
        (
            ["Answer first <think>not reasoning</think>"],
            ("", "Answer first <think>not reasoning</think>"),
        ),
        (["  plain"], ("", "  plain")),
        (["  <thi"], ("", "  <thi")),  # ended undecided: it was answer text
        (["<thinking>no</thinking>"], ("", "<thinking>no</thinking>")),
        (["<think></think>", "only answer"], ("", "only answer")),
        (["<think>a</think>b", " <think>c</think>"], ("a", "b <think>c</think>")),
        ([], ("", "")),
    ],
)
def test_splitter_cases(pieces: list[str], expected: tuple[str, str]) -> None:
    assert split(pieces) == expected


def test_answer_text_after_the_think_passes_through_without_buffering() -> None:
    splitter = ThinkTagSplitter()
    assert list(splitter.feed("<think>r</think>a")) == [ReasoningDelta("r"), TextDelta("a")]
    assert list(splitter.feed("<")) == [TextDelta("<")]  # no tag is looked for any more
    assert splitter.state == "answer"


def test_reasoning_is_streamed_as_it_comes_not_held_to_the_close_tag() -> None:
    splitter = ThinkTagSplitter()
    assert list(splitter.feed("<think>step one, ")) == [ReasoningDelta("step one, ")]
    assert list(splitter.feed("step two </")) == [ReasoningDelta("step two ")]
    assert list(splitter.feed("think>")) == []


@given(st.lists(st.integers(min_value=0, max_value=len(CONTENT)), max_size=12))
def test_any_cut_of_the_content_gives_the_same_reasoning_and_answer(cuts: list[int]) -> None:
    points = sorted({0, len(CONTENT), *cuts})
    pieces = [CONTENT[a:b] for a, b in itertools.pairwise(points)]
    assert split(pieces) == (REASONING, ANSWER)


# --- over a real socket ----------------------------------------------------------------------


async def collect(url: str, **provider_options: object) -> list[ProviderEvent]:
    provider = OpenAICompatible(url, "k", **provider_options)  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        stream = await provider.open(ChatRequest((Message("user", "x"),), "m"), http)
        try:
            return [event async for event in stream.events()]
        finally:
            await stream.aclose()


def reasoning_and_answer(events: list[ProviderEvent]) -> tuple[str, str]:
    return (
        "".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        "".join(e.text for e in events if isinstance(e, TextDelta)),
    )


def test_any_cut_of_deltas_and_bytes_over_a_socket_gives_the_same_reasoning_and_answer() -> None:
    with FakeUpstream() as up:

        @settings(max_examples=40, deadline=None)
        @given(
            st.lists(st.integers(min_value=1, max_value=len(CONTENT) - 1), max_size=10),
            st.lists(st.integers(min_value=1, max_value=4000), max_size=25),
        )
        def check(delta_cuts: list[int], byte_cuts: list[int]) -> None:
            points = sorted({0, len(CONTENT), *delta_cuts})
            pieces = [CONTENT[a:b] for a, b in itertools.pairwise(points)]
            up.push(openai_stream(pieces, split=byte_cuts))
            events = anyio.run(collect, up.url)
            assert reasoning_and_answer(events) == (REASONING, ANSWER)
            assert events[-1] == Finish("stop")

        check()


def test_a_think_that_never_closes_is_reasoning_up_to_the_finish(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.push(openai_stream(["<think>still ", "thinking </thi"], split=3))
    events = anyio.run(collect, fake_upstream.url)
    assert reasoning_and_answer(events) == ("still thinking </thi", "")
    assert events[-1] == Finish("stop")


def test_the_held_back_prefix_is_released_when_the_body_ends_without_done(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.push(openai_stream([" <th"], done=False))
    assert reasoning_and_answer(anyio.run(collect, fake_upstream.url)) == ("", " <th")


def test_switched_off_the_tags_are_answer_text(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(openai_stream(["<think>r</think>", "a"]))
    events = anyio.run(lambda: collect(fake_upstream.url, think_tags=False))
    assert reasoning_and_answer(events) == ("", "<think>r</think>a")


def test_reasoning_fields_and_tags_together(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(
        openai_stream(
            [{"reasoning": "vllm "}, {"reasoning_content": "deepseek "}, "<think>t</think>a"]
        )
    )
    events = anyio.run(collect, fake_upstream.url)
    assert reasoning_and_answer(events) == ("vllm deepseek t", "a")


def test_zhipu_leaves_think_tags_in_the_answer(fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(zhipu_stream(["<think>x</think>y"]))

    async def run() -> list[ProviderEvent]:
        provider = Zhipu("abc.def", auth="key", base_url=fake_upstream.url)
        async with httpx.AsyncClient() as http:
            stream = await provider.open(ChatRequest((Message("user", "x"),), "m"), http)
            try:
                return [event async for event in stream.events()]
            finally:
                await stream.aclose()

    assert reasoning_and_answer(anyio.run(run)) == ("", "<think>x</think>y")


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("1", True), ("0", False)])
def test_env_switch(value: str | None, expected: bool) -> None:
    env = {"LLM_SSE_PROVIDER": "openai", "LLM_SSE_API_KEY": "k"}
    if value is not None:
        env["LLM_SSE_THINK_TAGS"] = value
    provider = provider_from_env(env)
    assert isinstance(provider, OpenAICompatible)
    assert provider.think_tags is expected
