"""What a newcomer pastes from the README and the manual works.

Every ```python block is executed against a real uvicorn serving the example app (the one
``make run`` serves, with the embedded provider): ``http://127.0.0.1:8000`` in a block becomes
that server's address. An ASGI ``app`` the block builds is served too and must answer
``/llm/health``; a mount with the embedded provider must stream a question to ``done``, or
refuse it in the documented error shape when the block sets up ``authorize``. Blocks whose
first line is ``# not run: <why>`` are only compiled.

Every ```json block must parse; one that holds a request body (a ``messages`` key) must carry
its route as ``title="POST /llm/..."`` and is posted there: it must stream to its end. Every
``curl ... -d '<json>'`` in a shell block is posted the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from example_app import create_app
from llm_sse_mount import LLMMount, Scripted, SSEDecoder

from .support.docs import NOT_RUN, CodeBlock, code_blocks
from .support.servers import serve

#: The address the examples use: ``make run``'s.
EXAMPLE_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):8000")
REDIS_IN_EXAMPLES = "redis://127.0.0.1:6379/0"

BLOCKS = list(code_blocks())
PYTHON = [b for b in BLOCKS if b.lang == "python"]
JSON = [b for b in BLOCKS if b.lang == "json"]
SHELL = [b for b in BLOCKS if b.lang in ("sh", "bash", "shell")]


def _curl_bodies() -> list[tuple[CodeBlock, str, str]]:
    """(block, path, body) for every ``curl <url> ... -d '<json>'`` of the shell blocks."""
    out = []
    for block in SHELL:
        text = block.text.replace("\\\n", " ")
        for command in re.findall(r"curl [^\n]*", text):
            url = EXAMPLE_URL.search(command)
            body = re.search(r"-d '([^']*)'", command)
            if url and body:
                path = command[url.end() :].split()[0]
                out.append((block, path, body[1]))
    return out


CURLS = _curl_bodies()


def test_the_documentation_has_the_examples_this_file_runs() -> None:
    # A parser that silently found nothing would make every test below vacuous.
    assert len(PYTHON) >= 20
    assert sum(1 for b in JSON if b.title) >= 5
    assert CURLS


def test_make_run_serves_the_model_names_the_examples_use() -> None:
    # What `make run` builds (no LLM_SSE_* variables), asked the way a client asks.
    with serve(create_app(LLMMount.from_env(environ={}))) as server:
        served = set(httpx.get(server.url + "/llm/models").json()["models"])
    used: set[str] = set()
    for block in BLOCKS:
        # Requests to the mount in any language (the browser's JavaScript too); blocks that
        # configure a mount with a real provider name that vendor's models instead.
        talks_to_the_mount = EXAMPLE_URL.search(block.text) or "/llm/" in block.text
        if block.text.startswith(NOT_RUN):
            continue  # says why it cannot run against make run (a vendor's features, say)
        if (talks_to_the_mount and "provider=" not in block.text) or block.title:
            used.update(re.findall(r"""model["']?\s*[:=]\s*["']([^"']+)["']""", block.text))
    assert used, "no example against make run names a model"
    assert used <= served, f"examples use {used - served}, make run serves {served}"


# --- the example app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Iterator[str]:
    """The example app as ``make run`` builds it, with the embedded provider at full speed
    (same model names; its default pace would make each example take seconds)."""
    with serve(create_app(LLMMount(Scripted(pace=0.0)))) as server:
        yield server.url


def read_stream(response: httpx.Response) -> list[tuple[str, str]]:
    """(event name, data) of every event of an event-stream response."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    events = [e for chunk in response.iter_bytes() for e in decoder.feed(chunk)]
    events += decoder.close()
    return [(e.event, e.data) for e in events]


def assert_streams_to_the_end(events: list[tuple[str, str]]) -> None:
    assert events, "an empty stream"
    name, data = events[-1]
    # native and text end on `done`; the OpenAI and AI SDK protocols on `data: [DONE]`
    assert name == "done" or data == "[DONE]", events[-3:]


def post_body(base: str, route: str, body: Any) -> None:
    method, _, path = route.partition(" ")
    assert method == "POST" and path.startswith("/llm/"), route
    with httpx.stream("POST", base + path, json=body, timeout=30) as response:
        if response.headers["content-type"].startswith("application/json"):
            answer = json.loads(response.read())  # an OpenAI body with "stream": false
            assert response.status_code == 200 and "error" not in answer, answer
            return
        assert_streams_to_the_end(read_stream(response))


# --- JSON bodies and curl -------------------------------------------------------------------


@pytest.mark.parametrize("block", JSON, ids=[b.where for b in JSON])
def test_json_block_parses_and_every_request_body_streams(block: CodeBlock, example: str) -> None:
    value = json.loads(block.text)
    if not (isinstance(value, dict) and "messages" in value):
        return  # a response or an error shape: parsing it was the check
    assert block.title, f'{block.where}: a request body needs its route: ```json title="POST ..."'
    post_body(example, block.title, value)


@pytest.mark.parametrize(
    ("block", "path", "body"), CURLS, ids=[f"{b.where}{p}" for b, p, _ in CURLS]
)
def test_curl_request_streams(block: CodeBlock, path: str, body: str, example: str) -> None:
    post_body(example, f"POST {path}", json.loads(body))


# --- Python ---------------------------------------------------------------------------------


def mounts_in(namespace: dict[str, Any]) -> list[tuple[str, LLMMount, Any]]:
    """(base URL path, mount, app to serve) for what the block built: its ``app``'s mounts, or
    a bare ``LLMMount`` served the way the README mounts it."""
    app = namespace.get("app")
    if app is not None:
        found = [
            (route.path, route.app, app)
            for route in getattr(app, "routes", [])
            if isinstance(route, Mount) and isinstance(route.app, LLMMount)
        ]
        assert found, "the block builds an `app` without an LLMMount in it"
        return found
    return [
        ("/llm", m, Starlette(routes=[Mount("/llm", app=m)], lifespan=m.lifespan))
        for m in namespace.values()
        if isinstance(m, LLMMount)
    ]


def check_served(block: CodeBlock, namespace: dict[str, Any]) -> None:
    for prefix, mount, app in mounts_in(namespace):
        with serve(app) as server:
            base = server.url + prefix
            assert httpx.get(base + "/health").json()["status"] == "ok"
            if not isinstance(mount.provider, Scripted):
                continue  # a real vendor: building the mount was the check; no network here
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            with httpx.stream("POST", base + "/chat", json=body, timeout=30) as response:
                if "authorize" in block.text:
                    response.read()
                    assert response.status_code == 401, response.text
                    assert response.json()["error"]["code"] == "unauthorized"
                else:
                    assert_streams_to_the_end(read_stream(response))


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_example_runs(
    block: CodeBlock, example: str, request: pytest.FixtureRequest
) -> None:
    code = compile(block.text, block.where, "exec")  # every block, run or not, must compile
    if block.text.startswith(NOT_RUN):
        return
    text = EXAMPLE_URL.sub(example, block.text)
    if REDIS_IN_EXAMPLES in text:
        text = text.replace(REDIS_IN_EXAMPLES, request.getfixturevalue("redis_url"))
    if text != block.text:
        code = compile(text, block.where, "exec")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, namespace)
    if "print(" in block.text:
        assert out.getvalue().strip(), f"{block.where} printed nothing"
    check_served(block, namespace)
