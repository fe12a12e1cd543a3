"""Tool-call fragments in the shapes real servers send, repaired at the provider boundary:
the assembler alone (cases and a property), then each shape from a real-socket upstream
through the native stream, the official ``openai`` SDK (streamed and not) and the AI SDK."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.errors import UpstreamError
from llm_sse_mount.events import ToolCallDelta
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.tool_calls import ToolCallAssembler

from .support.fake_upstream import FakeUpstream, openai_stream
from .support.native import assert_contract, parse_frames, post_chat
from .support.servers import ServerThread
from .test_aisdk import aisdk_js, validate  # noqa: F401  (the fixture is used by name)

ServeApp = Callable[..., ServerThread]


@dataclass(frozen=True)
class Call:
    id: str | None
    name: str
    arguments: str


def assemble(deltas: Iterable[ToolCallDelta]) -> list[Call]:
    """Calls by index, as a client folds them; checks the repaired shape on the way."""
    calls: dict[int, dict[str, Any]] = {}
    for d in deltas:
        if d.index not in calls:
            assert d.index == len(calls), "indexes are 0, 1, … in order of first appearance"
            assert d.id, "the first fragment of a call carries its id"
            calls[d.index] = {"id": d.id, "name": d.name, "args": ""}
        else:
            assert d.id is None
            if d.name is not None:
                assert calls[d.index]["name"] is None
                calls[d.index]["name"] = d.name
        calls[d.index]["args"] += d.arguments
    return [Call(c["id"], c["name"], c["args"]) for c in calls.values()]


def feed_all(fragments: Iterable[dict[str, Any]]) -> list[ToolCallDelta]:
    assembler = ToolCallAssembler(id_prefix="call_made")
    return [d for f in fragments for d in assembler.feed(**f)]


WEATHER = '{"city":"巴黎"}'
# Each shape: the upstream's tool_calls deltas, one list per chunk (OpenAI's wire shape).
SHAPES: dict[str, list[list[dict[str, Any]]]] = {
    "openai": [
        [
            {
                "index": 0,
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        [{"index": 0, "function": {"arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": '"巴黎"}'}}],
        [
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            }
        ],
    ],
    "no_index": [
        [{"id": "call_a", "function": {"name": "get_weather", "arguments": '{"city":'}}],
        [{"function": {"arguments": '"巴黎"}'}}],
        [{"id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}],
    ],
    "no_index_no_id": [
        [{"function": {"name": "get_weather", "arguments": WEATHER}}],
        [{"function": {"name": "get_time", "arguments": "{}"}}],
    ],
    "ollama_all_index_0": [
        [{"index": 0, "id": "call_a", "function": {"name": "get_weather", "arguments": WEATHER}}],
        [{"index": 0, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}],
    ],
    "arguments_in_a_final_fragment": [
        [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather"}}],
        [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time"}}],
        [{"index": 0, "function": {"arguments": WEATHER}}],
        [{"index": 1, "function": {"arguments": "{}"}}],
    ],
    "no_ids": [
        [{"index": 0, "function": {"name": "get_weather", "arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": '"巴黎"}'}}],
        [{"index": 1, "function": {"name": "get_time", "arguments": "{}"}}],
    ],
    "id_repeated_on_every_fragment": [
        [
            {
                "index": 0,
                "id": "call_a",
                "function": {"name": "get_weather", "arguments": '{"city":'},
            }
        ],
        [{"index": 0, "id": "call_a", "function": {"arguments": '"巴黎"}'}}],
        [{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}],
    ],
    "name_after_the_id": [
        [{"index": 0, "id": "call_a", "type": "function", "function": {"arguments": ""}}],
        [{"index": 0, "function": {"name": "get_weather", "arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": '"巴黎"}'}}],
        [
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            }
        ],
    ],
    "arguments_as_objects": [
        [
            {
                "index": 0,
                "id": "call_a",
                "function": {"name": "get_weather", "arguments": {"city": "巴黎"}},
            }
        ],
        [{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": {}}}],
    ],
}


def fragments_of(shape: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for chunk in shape:
        for call in chunk:
            fn = call.get("function", {})
            out.append(
                {
                    "index": call.get("index"),
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": fn.get("arguments"),
                }
            )
    return out


def check_calls(calls: list[Call], shape: str) -> None:
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", WEATHER), ("get_time", "{}")]
    assert calls[0].id != calls[1].id
    if "no_id" not in shape:
        assert [c.id for c in calls] == ["call_a", "call_b"]  # the upstream's ids are kept


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_assembles_into_two_distinct_calls(shape: str) -> None:
    check_calls(assemble(feed_all(fragments_of(SHAPES[shape]))), shape)


@pytest.mark.parametrize(
    "fragment",
    [
        {"index": 0, "id": "c", "name": "f", "arguments": 12},
        {"index": 0, "id": "c", "name": "f", "arguments": ["a"]},
        {"index": 0, "id": "c", "name": "f", "arguments": True},
        {"index": "0", "id": "c", "name": "f", "arguments": ""},
        {"index": -1, "id": "c", "name": "f", "arguments": ""},
        {"index": 0, "id": 7, "name": "f", "arguments": ""},
        {"index": 0, "id": "c", "name": {"x": 1}, "arguments": ""},
    ],
)
def test_fragments_of_the_wrong_type_are_a_bad_response(fragment: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as info:
        feed_all([fragment])
    assert info.value.code == "upstream_bad_response"


def test_an_object_mixed_with_string_pieces_is_a_bad_response() -> None:
    with pytest.raises(UpstreamError) as info:
        feed_all(
            [
                {"index": 0, "id": "c", "name": "f", "arguments": '{"a":'},
                {"index": 0, "arguments": {"a": 1}},
            ]
        )
    assert info.value.code == "upstream_bad_response"


def test_a_call_that_never_gets_a_name_is_released_at_the_end() -> None:
    assembler = ToolCallAssembler(id_prefix="call_made")
    assert list(assembler.feed(index=0, id="c", arguments='{"a":')) == []
    assert list(assembler.feed(index=0, arguments="1}")) == []
    assert list(assembler.flush()) == [ToolCallDelta(0, "c", None, '{"a":1}')]
    assert list(assembler.flush()) == []


def test_made_up_ids_never_collide_with_the_upstreams() -> None:
    calls = assemble(
        feed_all(
            [
                {"index": 0, "id": "call_made_1", "name": "f", "arguments": "{}"},
                {"index": 1, "name": "g", "arguments": "{}"},
                {"index": 2, "name": "h", "arguments": "{}"},
            ]
        )
    )
    assert len({c.id for c in calls}) == 3


# --- property --------------------------------------------------------------------------------

names = st.sampled_from(["get_weather", "get_time", "search", "f"])
arguments = st.text(max_size=30)


@st.composite
def upstream_calls(draw: st.DrawFn) -> tuple[list[Call], list[dict[str, Any]]]:
    """Calls, and fragments of them in one of the shapes seen in the wild."""
    n = draw(st.integers(min_value=1, max_value=4))
    calls = [
        Call(f"up_{i}" if draw(st.booleans()) else None, draw(names), draw(arguments))
        for i in range(n)
    ]
    variant = draw(st.sampled_from(["indexed", "indexed_interleaved", "all_zero", "no_index"]))
    per_call: list[list[dict[str, Any]]] = []
    for i, call in enumerate(calls):
        cuts = sorted(draw(st.lists(st.integers(0, len(call.arguments)), max_size=4)))
        bounds = [0, *cuts, len(call.arguments)]
        pieces = [call.arguments[a:b] for a, b in itertools.pairwise(bounds)]
        index = {"indexed": i, "indexed_interleaved": i, "all_zero": 0, "no_index": None}[variant]
        frags = [{"index": index, "id": call.id, "name": call.name, "arguments": pieces[0]}]
        frags += [{"index": index, "arguments": p} for p in pieces[1:]]
        per_call.append(frags)
    if variant == "indexed_interleaved":
        # Parallel calls interleave; each call's own fragments stay in order.
        order = draw(st.permutations([i for i, f in enumerate(per_call) for _ in f]))
        queues = [list(f) for f in per_call]
        fragments = [queues[i].pop(0) for i in order]
        # Calls appear in index order of their first fragment for the comparison below.
        first = sorted(range(n), key=lambda i: order.index(i))
        calls = [calls[i] for i in first]
    else:
        fragments = [f for frags in per_call for f in frags]
    return calls, fragments


@given(upstream_calls())
def test_any_shape_and_fragmenting_assembles_the_same_calls(
    case: tuple[list[Call], list[dict[str, Any]]],
) -> None:
    calls, fragments = case
    got = assemble(feed_all(fragments))
    assert [(c.name, c.arguments) for c in got] == [(c.name, c.arguments) for c in calls]
    assert len({c.id for c in got}) == len(got)
    for mine, theirs in zip(got, calls, strict=True):
        if theirs.id is not None:
            assert mine.id == theirs.id


# --- every client protocol over real sockets ---------------------------------------------------


def upstream_script(shape: list[list[dict[str, Any]]]) -> list[Any]:
    deltas: list[Any] = [{"role": "assistant", "content": None, "tool_calls": c} for c in shape]
    return openai_stream(deltas, finish_reason="tool_calls", split=7)


def serve(serve_app: ServeApp, up: FakeUpstream) -> str:
    mount = LLMMount(provider=OpenAICompatible(up.url, "k"), model="m", retries=0)
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_through_the_native_and_openai_outputs(
    shape: str, fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.default = upstream_script(SHAPES[shape])
    url = serve(serve_app, fake_upstream)

    response, raw = post_chat(url + "/chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    frames = parse_frames(raw)
    assert_contract(frames)
    native = [
        ToolCallDelta(f.data["index"], f.data["id"], f.data["name"], f.data["arguments"])
        for f in frames
        if f.event == "tool_call"
    ]
    check_calls(assemble(native), shape)
    assert frames[-1].data == {"finish_reason": "tool_calls"}

    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    streamed: dict[int, dict[str, str]] = {}
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = streamed.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            call["id"] = call["id"] or (tc.id or "")
            call["name"] = call["name"] or ((tc.function and tc.function.name) or "")
            call["args"] += (tc.function and tc.function.arguments) or ""
    assert sorted(streamed) == [0, 1]
    check_calls([Call(c["id"], c["name"], c["args"]) for c in streamed.values()], shape)

    completion = client.chat.completions.create(model="m", messages=messages)
    tool_calls = completion.choices[0].message.tool_calls or []
    check_calls([Call(t.id, t.function.name, t.function.arguments) for t in tool_calls], shape)  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    "shape", ["no_index_no_id", "ollama_all_index_0", "name_after_the_id", "arguments_as_objects"]
)
def test_repaired_shapes_through_the_ai_sdk(
    shape: str,
    fake_upstream: FakeUpstream,
    serve_app: ServeApp,
    aisdk_js: Path,  # noqa: F811
    node_bin: str,
) -> None:
    fake_upstream.default = upstream_script(SHAPES[shape])
    url = serve(serve_app, fake_upstream) + "/ai-sdk/chat"
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    body = {"id": "chat-1", "messages": [user], "trigger": "submit-message"}
    result = validate(aisdk_js, node_bin, url, body)
    assert result["errors"] == []
    tools = [p for p in result["message"]["parts"] if p["type"].startswith("tool-")]
    assert [(p["type"], p["input"]) for p in tools] == [
        ("tool-get_weather", {"city": "巴黎"}),
        ("tool-get_time", {}),
    ]
    assert tools[0]["toolCallId"] != tools[1]["toolCallId"]


@pytest.mark.parametrize("bad", [12, ["a"], None])
def test_arguments_of_a_wrong_type_end_the_stream_with_a_bad_response_error(
    bad: Any, fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fn: dict[str, Any] = {"name": "f", "arguments": bad}
    if bad is None:
        fn = {"name": {"nested": "name"}}  # a name that is not a string
    fake_upstream.default = upstream_script([[{"index": 0, "id": "c", "function": fn}]])
    url = serve(serve_app, fake_upstream)
    _, raw = post_chat(url + "/chat", {"messages": [{"role": "user", "content": "hi"}]})
    frames = parse_frames(raw)
    assert_contract(frames)
    assert [f.data["code"] for f in frames if f.event == "error"] == ["upstream_bad_response"]
    assert not [f for f in frames if f.event == "tool_call"]
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_bad_response"
    assert json.dumps(r.json())  # a JSON body, not a traceback
