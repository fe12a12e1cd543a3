"""Hypothesis throws generated Messages API bodies at ``POST /v1/messages`` of a running mount
over a real socket: bodies that are almost right (every block type, with wrong members), and
garbage. Whatever comes in, the answer is an Anthropic stream that ends once, a ``message``, or
Anthropic's error shape with a code from a known set: never a 5xx, never a hang."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_sse_mount import LLMMount, Scripted
from llm_sse_mount.core.access import BearerTokens
from llm_sse_mount.core.limits import Limits

from .support.access_apps import host_app
from .support.servers import serve
from .test_fuzz_requests import KNOWN_CODES, any_text, json_values, maybe

#: The codes /v1/messages adds to those of the native routes.
CODES = KNOWN_CODES | {
    "unsupported_parameter",
    "invalid_image",
    "too_many_images",
    "image_too_large",
}
TOKEN = "fuzz-token"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",  # a body not sent as application/json
    429: "rate_limit_error",
}

PNG = "iVBORw0KGgo="
sources = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("base64"),
            "media_type": maybe(st.sampled_from(["image/png", "text/plain"])),
            "data": maybe(st.sampled_from([PNG, ""])),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("url"), "url": maybe(st.sampled_from(["https://a.test/x", "http://x"]))}
    ),
    json_values,
)
blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(any_text)}),
    st.fixed_dictionaries({"type": st.just("image"), "source": sources}),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": maybe(any_text), "name": maybe(any_text)},
        optional={"input": json_values},
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": maybe(any_text)},
        optional={"content": maybe(any_text), "is_error": json_values},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["thinking", "redacted_thinking", "document", "x"])},
        optional={"thinking": any_text, "signature": any_text},
    ),
)
message = st.fixed_dictionaries(
    {
        "role": maybe(st.sampled_from(["user", "assistant", "system", ""])),
        "content": st.one_of(any_text, st.lists(blocks, max_size=4), json_values),
    },
    optional={"extra": json_values},
)
messages_body = st.fixed_dictionaries(
    {
        "model": maybe(st.sampled_from(["scripted-1", "other"])),
        "max_tokens": maybe(st.integers(-5, 100)),
        "messages": st.one_of(st.lists(message, min_size=0, max_size=4), json_values),
    },
    optional={
        "stream": maybe(st.booleans()),
        "system": st.one_of(any_text, st.lists(blocks, max_size=2), json_values),
        "temperature": maybe(st.floats(-1, 2)),
        "top_p": maybe(st.floats(-0.5, 1.5)),
        "top_k": json_values,
        "stop_sequences": json_values,
        "metadata": json_values,
        "tools": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": maybe(any_text), "input_schema": maybe(st.just({"type": "object"}))},
                    optional={"type": maybe(st.sampled_from(["custom", "bash_20250124"]))},
                ),
                max_size=2,
            ),
            json_values,
        ),
        "tool_choice": st.one_of(
            st.fixed_dictionaries(
                {"type": maybe(st.sampled_from(["auto", "any", "tool", "none"]))},
                optional={"name": maybe(any_text)},
            ),
            json_values,
        ),
        "thinking": st.one_of(
            st.fixed_dictionaries(
                {"type": maybe(st.sampled_from(["enabled", "disabled", "adaptive"]))},
                optional={"budget_tokens": maybe(st.integers(0, 5000))},
            ),
            json_values,
        ),
        "output_config": json_values,
    },
)
#: A valid body with one field replaced or added by a generated one: most of these get past
#: the first check, so the later ones (images, tools, thinking, admission) are reached.
VALID: dict[str, object] = {
    "model": "other",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hi"}],
}
near_valid = st.fixed_dictionaries(
    {
        "stream": st.booleans(),
        "field": st.sampled_from(
            ["messages", "system", "tools", "tool_choice", "thinking", "stop_sequences"]
        ),
        "body": messages_body,
    }
).map(
    lambda d: {
        **VALID,
        "stream": d["stream"],
        d["field"]: d["body"].get(d["field"], VALID.get(d["field"])),
    }
)
raw_body = st.one_of(
    near_valid.map(lambda b: json.dumps(b).encode()),
    messages_body.map(lambda b: json.dumps(b).encode()),
    messages_body.map(lambda b: json.dumps(b).encode()[: len(json.dumps(b)) // 2]),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
)
# Mostly the right key, so most bodies get past authentication to the parser and the stream;
# a wrong or empty key, or none, often enough to reach the 401.
headers = st.fixed_dictionaries(
    {"anthropic-version": st.just("2023-06-01")},
    optional={"x-api-key": st.sampled_from([TOKEN] * 6 + ["wrong", ""])},
)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        assert response.status_code == 200
        events = [b.split("\n", 1)[0] for b in response.text.split("\n\n") if b.strip()]
        assert events[0] == "event: message_start", events
        assert events[-1] in ("event: message_stop", "event: error"), events
        assert events.count("event: message_stop") + events.count("event: error") == 1
        return
    assert kind == "application/json", (response.status_code, kind, response.text)
    body = response.json()
    if response.status_code == 200:
        assert body["type"] == "message", body
        return
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message", "code"}, body
    assert body["error"]["code"] in CODES, body
    assert body["error"]["type"] == ERROR_TYPES[response.status_code], body


def test_fuzzed_message_bodies_get_an_answer_or_a_clean_anthropic_error() -> None:
    mount = LLMMount(
        provider=Scripted(pace=0),
        models=["other"],
        max_body_bytes=4096,
        max_tokens=50,
        max_images=2,
        authorize=BearerTokens([TOKEN]),
        limits=Limits(requests="100000/minute", concurrent=8),
    )
    seen: dict[int, int] = {}
    with serve(host_app(mount)) as server, httpx.Client(base_url=server.url, timeout=5) as client:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(raw_body, headers)
        @example(
            b'{"model": "other", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": {}}]}]}',
            {"x-api-key": TOKEN},
        )
        @example(
            b'{"model": "other", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": []}}',
            {"x-api-key": TOKEN},
        )
        def one(body: bytes, hdrs: dict[str, str]) -> None:
            # The SDK always sends JSON (the 415 for other types: tests/test_edge_hardening.py).
            json_body = {**hdrs, "content-type": "application/json"}
            response = client.post("/llm/v1/messages", content=body, headers=json_body)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            check(response)

        one()
    # The generator reached the interesting places, not only the first validation error.
    assert seen.get(200, 0) >= 5, seen
    assert {400, 401} <= set(seen), seen
