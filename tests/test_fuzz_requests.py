"""Hypothesis throws generated requests at a running mount over a real socket: JSON bodies that
are almost right and bodies that are garbage, odd headers and query strings. Whatever comes in,
the answer is never a 5xx and never a hang: either a stream that ends with ``done``, or the
JSON error shape with a code from a known, stable set."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_sse_mount import LLMMount, Scripted
from llm_sse_mount.core.access import BearerTokens, Principal
from llm_sse_mount.core.limits import Limits

from .support.access_apps import events_of, host_app
from .support.servers import serve

#: Every code a client may see before a stream begins (a new one must be added on purpose).
KNOWN_CODES = frozenset(
    {
        "invalid_json",
        "unsupported_media_type",
        "invalid_request",
        "unknown_field",
        "invalid_role",
        "invalid_parameter",
        "unsupported_content",
        "parameter_not_allowed",
        "model_required",
        "unknown_model",
        "model_forbidden",
        "too_many_messages",
        "conversation_too_long",
        "body_too_large",
        "unauthorized",
        "forbidden",
        "rate_limited",
        "not_found",
        "stream_not_found",
        "invalid_last_event_id",
    }
)

TOKEN = "fuzz-token"

# --- strategies -------------------------------------------------------------------------------

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
# Any text JSON can carry, lone surrogates and control characters included.
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


roles = st.sampled_from(["system", "user", "assistant", "tool", "root", ""])
content = st.one_of(
    any_text,
    st.none(),
    st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": any_text}),
        max_size=3,
    ),
)
message = st.fixed_dictionaries(
    {"role": maybe(roles), "content": maybe(content)},
    optional={
        "name": maybe(any_text),
        "tool_call_id": maybe(any_text),
        "tool_calls": json_values,
        "extra": json_values,
    },
)
chat_body = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(message, min_size=0, max_size=10), json_values)},
    optional={
        "model": maybe(st.sampled_from(["scripted-1", "other", "locked", "gpt-4o"])),
        "temperature": maybe(st.floats(-1, 3)),
        "top_p": maybe(st.floats(-0.5, 1.5)),
        "max_tokens": maybe(st.integers(-5, 20_000_000)),
        "stop": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "base_url": any_text,
        "api_key": any_text,
        "headers": json_values,
    },
)
raw_body = st.one_of(
    chat_body.map(lambda b: json.dumps(b).encode()),
    chat_body.map(lambda b: json.dumps(b).encode()[: len(json.dumps(b)) // 2]),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b"x" * 5000),  # over max_body_bytes
)
authorization = st.one_of(
    st.just(f"Bearer {TOKEN}"),
    st.just(f"Bearer {TOKEN}-locked"),
    st.just("Bearer wrong"),
    printable,
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "authorization": authorization,
        "content-type": st.sampled_from(["application/json", "text/plain", "", "a/b; x=y"]),
        "last-event-id": printable,
        "x-forwarded-for": printable,
    },
).map(
    # HTTP forbids leading/trailing whitespace in a header value; httpx refuses to send it.
    lambda h: {k: v.strip() for k, v in h.items()}
)
query = st.dictionaries(
    st.sampled_from(["prompt", "model", "system", "last_event_id", "access_token", "after", "zz"]),
    st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=30), st.just(TOKEN)),
    max_size=4,
)
stream_ids = st.text("abcXYZ019-_:", min_size=1, max_size=20)  # no "." (dot segments)
requests = st.one_of(
    # Bodies declared JSON unless the drawn headers say otherwise (anything else is a 415).
    st.tuples(
        st.just("POST"),
        st.just("/llm/chat"),
        raw_body,
        headers.map(lambda h: {"content-type": "application/json", **h}),
        query,
    ),
    st.tuples(st.just("GET"), st.just("/llm/chat"), st.just(b""), headers, query),
    st.tuples(
        st.just("GET"), stream_ids.map(lambda s: f"/llm/chat/{s}"), st.just(b""), headers, query
    ),
    st.tuples(
        st.just("GET"),
        st.sampled_from(["/llm/models", "/llm/health"]),
        st.just(b""),
        headers,
        query,
    ),
)

# --- the test ---------------------------------------------------------------------------------

AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
LONE_SURROGATE = b'{"messages": [{"role": "user", "content": "hi \\ud800 there"}]}'


def check(response: httpx.Response, path: str) -> None:
    assert response.status_code < 500, response.text
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        assert response.status_code == 200
        frames = events_of(response)
        assert frames, response.text
        assert frames[-1][0] == "done", frames[-1]
        assert [e for e, _ in frames].count("done") == 1
        return
    assert kind == "application/json", (response.status_code, kind, response.text)
    body = response.json()
    if response.status_code == 200:
        assert path in ("/llm/models", "/llm/health"), body
        return
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] in KNOWN_CODES, body
    assert isinstance(body["error"]["message"], str)
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1


def test_fuzzed_requests_get_a_stream_or_a_known_error_never_a_5xx_or_a_hang() -> None:
    mount = LLMMount(
        provider=Scripted(pace=0),
        models=["other", "locked"],
        max_body_bytes=4096,
        max_messages=6,
        max_chars=2000,
        max_tokens=50,
        authorize=BearerTokens(
            {TOKEN: "fuzzer", f"{TOKEN}-locked": Principal("locked", models={"locked"})}
        ),
        limits=Limits(requests="100000/minute", concurrent=8, tokens_per_minute=10**9),
    )
    seen: dict[int, int] = {}
    with serve(host_app(mount)) as server, httpx.Client(base_url=server.url, timeout=5) as client:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests)
        # Found by this test: a lone surrogate escape crashed the stream (UTF-8 cannot encode
        # it); nesting deeper than the interpreter's recursion limit raised RecursionError.
        @example(("POST", "/llm/chat", LONE_SURROGATE, AUTH, {}))
        @example(("POST", "/llm/chat", b"[" * 3000, AUTH, {}))
        @example(("POST", "/llm/chat", b'{"messages": [{"role": [], "content": ""}]}', AUTH, {}))
        @example(
            ("POST", "/llm/chat", b'{"messages": ' + b"[" * 1500 + b"]" * 1500 + b"}", AUTH, {})
        )
        def one(req: tuple[str, str, bytes, dict[str, str], dict[str, str]]) -> None:
            method, path, body, hdrs, params = req
            response = client.request(
                method, path, content=body or None, headers=hdrs, params=params
            )
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            check(response, path)

        one()
    # The generator reached the interesting places, not only the first validation error.
    assert seen.get(200, 0) >= 5, seen
    assert {400, 401} <= set(seen), seen
