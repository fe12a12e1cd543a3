"""``openai-agents`` with its default model (``OpenAIResponsesModel``, the Responses API)
against a real mount and a fake upstream: a tool-using agent runs to its final answer,
streamed and not, and the upstream sees the tool round trip in chat form."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

from llm_sse_mount.providers.openai import OpenAICompatible

from .support.fake_upstream import FakeUpstream, openai_stream
from .support.running import Running
from .support.servers import ServerThread

CALL = {
    "tool_calls": [
        {
            "index": 0,
            "id": "call_1",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
}


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"clear over {city}"


def agent_for(base_url: str) -> tuple[Agent[Any], openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    model = OpenAIResponsesModel(model="m1", openai_client=client)
    agent = Agent(name="weather", instructions="Be helpful.", tools=[get_weather], model=model)
    return agent, client


def assert_round_trip(up: FakeUpstream) -> None:
    first, second = (r.json for r in up.requests[-2:])
    assert first["messages"] == [
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": "weather in Oslo?"},
    ]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "clear over Oslo", "tool_call_id": "call_1"},
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agent_with_a_tool_runs_to_its_final_answer(
    serve_app: Callable[..., ServerThread], fake_upstream: FakeUpstream, streamed: bool
) -> None:
    fake_upstream.push(
        openai_stream([CALL], finish_reason="tool_calls"),
        openai_stream(["Sunny ", "in Oslo."], usage={"prompt_tokens": 9, "completion_tokens": 3}),
    )
    m = Running(serve_app, OpenAICompatible(fake_upstream.url + "/v1", "k"))
    agent, client = agent_for(m.base_url)
    config = RunConfig(tracing_disabled=True)
    try:
        if streamed:
            result = Runner.run_streamed(agent, "weather in Oslo?", run_config=config)
            kinds = [event.type async for event in result.stream_events()]
            assert "raw_response_event" in kinds
            final = result.final_output
        else:
            ran = await Runner.run(agent, "weather in Oslo?", run_config=config)
            final = ran.final_output
            usage = ran.context_wrapper.usage
            assert usage.output_tokens >= 3
    finally:
        await client.close()
    assert final == "Sunny in Oslo."
    assert len(fake_upstream.requests) == 2
    assert_round_trip(fake_upstream)
    assert json.loads(fake_upstream.requests[0].body)["stream"] is True
