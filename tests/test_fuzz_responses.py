"""Hypothesis throws generated bodies at ``POST /v1/responses`` on a running mount over a real
socket: Responses requests that are almost right, and garbage. Whatever comes in, the answer is
never a 5xx and never a hang: either a typed event stream numbered from 0 with exactly one
terminal event, a ``response`` object, or OpenAI's error shape with a catalogue code."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_sse_mount import LLMMount
from llm_sse_mount.errors import CATALOGUE
from llm_sse_mount.providers.capabilities import Capabilities
from llm_sse_mount.providers.scripted import Scripted

from .support.servers import serve

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}

any_text = st.text(max_size=30)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, json_values)


image_urls = st.sampled_from(
    ["https://x/a.png", "data:image/png;base64,iVBORw0K", "http://x/a.png", "data:,", ""]
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": maybe(any_text)}),
    st.fixed_dictionaries(
        {"type": st.just("input_image"), "image_url": maybe(image_urls)},
        optional={"detail": maybe(st.sampled_from(["auto", "low", "high"]))},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["output_text", "refusal", "input_file"])}),
)
items = st.one_of(
    st.fixed_dictionaries(
        {
            "role": maybe(st.sampled_from(["user", "assistant", "system", "developer", "tool"])),
            "content": st.one_of(any_text, st.lists(parts, max_size=3), json_values),
        },
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": maybe(any_text),
            "name": maybe(any_text),
            "arguments": maybe(any_text),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": maybe(any_text), "output": json_values}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["reasoning", "item_reference", "web_search_call"])}
    ),
    json_values,
)
tools = st.lists(
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["function", "web_search"])), "name": maybe(any_text)},
        optional={"parameters": json_values, "description": json_values},
    ),
    max_size=2,
)
text_config = st.fixed_dictionaries(
    {},
    optional={
        "format": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
                optional={"name": maybe(any_text), "schema": json_values, "strict": json_values},
            ),
            json_values,
        ),
        "verbosity": json_values,
    },
)
body = st.fixed_dictionaries(
    {"input": st.one_of(any_text, st.lists(items, max_size=5), json_values)},
    optional={
        "model": maybe(st.sampled_from(["scripted-1", "other"])),
        "instructions": maybe(any_text),
        "stream": maybe(st.booleans()),
        "temperature": maybe(st.floats(-1, 3)),
        "top_p": maybe(st.floats(-0.5, 1.5)),
        "max_output_tokens": maybe(st.integers(-5, 20_000_000)),
        "tools": maybe(tools),
        "tool_choice": json_values,
        "text": maybe(text_config),
        "reasoning": maybe(st.fixed_dictionaries({}, optional={"effort": json_values})),
        "store": json_values,
        "previous_response_id": maybe(any_text),
        "metadata": json_values,
        "frobnicate": json_values,
    },
)
#: Nearly valid: every field of the right kind, so most of these reach the stream.
good_body = st.fixed_dictionaries(
    {
        "input": st.one_of(any_text.filter(bool), st.lists(items, min_size=1, max_size=3)),
        "stream": st.booleans(),
    },
    optional={
        "instructions": any_text,
        "temperature": st.floats(0, 2),
        "max_output_tokens": st.integers(1, 50),
        "text": text_config,
        "tools": tools,
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "high", "x"])}),
        "store": st.booleans(),
    },
)
raw_body = st.one_of(
    good_body.map(lambda b: json.dumps(b).encode()),
    good_body.map(lambda b: json.dumps(b).encode()),
    body.map(lambda b: json.dumps(b).encode()),
    body.map(lambda b: json.dumps(b).encode()[: len(json.dumps(b)) // 2]),
    st.binary(max_size=100),
    st.just(b"x" * 5000),  # over max_body_bytes
)


def check(response: httpx.Response) -> str:
    assert response.status_code < 500, response.text
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        assert response.status_code == 200
        events = [
            json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
        ]
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert [e["type"] for e in events if e["type"] in TERMINAL] == [events[-1]["type"]]
        return "stream"
    assert kind == "application/json", (response.status_code, kind, response.text)
    data = response.json()
    if response.status_code == 200:
        assert data["object"] == "response"
        return "response"
    assert set(data) == {"error"}, data
    assert set(data["error"]) == {"message", "type", "param", "code"}, data
    assert data["error"]["code"] in CATALOGUE, data
    assert CATALOGUE[data["error"]["code"]].status == response.status_code
    return data["error"]["code"]


class _Vision(Scripted):
    """The scripted answer, declaring images and JSON: so those requests get through too."""

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(True, True, frozenset({"json_object", "json_schema"}))


def test_fuzzed_responses_bodies_get_an_answer_or_a_known_error_never_a_5xx() -> None:
    mount = LLMMount(
        provider=_Vision(pace=0),
        models=["other"],
        max_body_bytes=4096,
        max_messages=6,
        max_chars=2000,
        max_tokens=50,
    )
    seen: dict[str, int] = {}
    with serve(mount) as server, httpx.Client(base_url=server.url, timeout=5) as client:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            derandomize=True,  # the coverage asserted below must not depend on the seed
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(raw_body)
        @example(b'{"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}')
        @example(b'{"input": "hi", "stream": true, "text": {"format": {"type": "json_object"}}}')
        @example(b'{"input": [{"role": "user", "content": [{"type": "input_image"}]}]}')
        def one(raw: bytes) -> None:
            response = client.post(
                "/v1/responses", content=raw, headers={"content-type": "application/json"}
            )
            outcome = check(response)
            seen[outcome] = seen.get(outcome, 0) + 1

        one()
    # The generator reached the interesting places, not only the first validation error.
    assert seen.get("stream", 0) >= 5 and seen.get("response", 0) >= 5, seen
    assert len(seen) >= 6, seen
