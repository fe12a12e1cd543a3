"""The example hosts over real sockets: the Starlette app and the FastAPI app serve the page,
the browser client and the mount; ``python -m example_app`` starts and answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from example_app import create_app
from example_app.__main__ import parse_args
from example_app.fastapi_app import create_app as create_fastapi_app
from llm_sse_mount import LLMMount, Scripted, SSEDecoder

from .support.servers import PROJECT_ROOT, ServerThread, free_port, serve_subprocess

ANSWER = "Hello from the example, 你好!\nSecond line."

#: The embedded provider's default answer takes seconds to stream: four pieces are enough.
SHORT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

HOSTS = {"starlette": create_app, "fastapi": create_fastapi_app}


def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    events = [e for chunk in response.iter_bytes() for e in decoder.feed(chunk)]
    return [(e.event, json.loads(e.data)) for e in events]


def check_answer(events: list[tuple[str, Any]], text: str) -> None:
    names = [name for name, _ in events]
    assert names[0] == "start"
    assert names[-2:] == ["usage", "done"]
    assert events[-1][1] == {"finish_reason": "stop"}
    assert "".join(data["text"] for name, data in events if name == "delta") == text
    assert names.count("delta") >= 3  # in pieces, not in one frame


@pytest.fixture(params=sorted(HOSTS))
def host(request: pytest.FixtureRequest, serve_app: Callable[..., ServerThread]) -> str:
    mount = LLMMount(Scripted(answer=ANSWER, reasoning="", pace=0.0), models=["scripted-1", "x"])
    return serve_app(HOSTS[request.param](mount)).url


def test_page_is_html_with_the_test_hooks_and_a_local_only_policy(host: str) -> None:
    page = httpx.get(host + "/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for hook in ("prompt", "send", "stop", "answer", "error", "reasoning", "stats", "model"):
        assert f'data-testid="{hook}"' in page.text
    assert "//" not in page.text.replace("<!--", "")  # no absolute URL: nothing from elsewhere
    script = httpx.get(host + "/static/app.js")
    assert script.status_code == 200
    assert 'from "/llm/client.js"' in script.text
    assert httpx.get(host + "/eventsource.html").status_code == 200


def test_client_js_is_served_as_a_cacheable_module(host: str) -> None:
    response = httpx.get(host + "/llm/client.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=" in response.headers["cache-control"]
    assert "export class LLMClient" in response.text
    etag = response.headers["etag"]
    again = httpx.get(host + "/llm/client.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_the_mount_streams_and_lists_models(host: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", host + "/llm/chat", json=body, timeout=10) as response:
        check_answer(read_events(response), ANSWER)
    with httpx.stream("GET", host + "/llm/chat", params={"prompt": "hi"}, timeout=10) as response:
        check_answer(read_events(response), ANSWER)
    assert httpx.get(host + "/llm/models").json() == {
        "default": "scripted-1",
        "models": ["scripted-1", "x"],
    }
    refused = httpx.post(host + "/llm/chat", json={"messages": []})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"


def test_fastapi_host_keeps_its_own_routes(serve_app: Callable[..., ServerThread]) -> None:
    url = serve_app(create_fastapi_app(LLMMount(Scripted(pace=0.0)))).url
    assert httpx.get(url + "/api/hello", params={"name": "mount"}).json() == {"hello": "mount"}
    assert httpx.get(url + "/llm/health").json() == {"status": "ok", "provider": "scripted"}


def test_fastapi_module_app_runs_under_uvicorn() -> None:
    # The documented command: uvicorn example_app.fastapi_app:app
    env = {"LLM_SSE_PROVIDER": "scripted"}
    with serve_subprocess("example_app.fastapi_app:app", env=env, ready_path="/llm/health") as proc:
        assert httpx.get(proc.url + "/").status_code == 200
        with httpx.stream("POST", proc.url + "/llm/chat", json=SHORT, timeout=20) as response:
            assert read_events(response)[-1] == ("done", {"finish_reason": "length"})


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LLM_SSE_") and k not in ("HOST", "PORT")
    }
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_python_dash_m_example_app_starts_and_answers() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_app", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=_clean_env(PORT="1"),  # the command line wins over the environment
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(url + "/llm/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "python -m example_app did not answer in 15 s"
            time.sleep(0.05)  # polling a child process for readiness: nothing to wait on
        assert httpx.get(url + "/").headers["content-type"].startswith("text/html")
        assert httpx.get(url + "/llm/client.js").status_code == 200
        with httpx.stream("POST", url + "/llm/chat", json=SHORT, timeout=20) as response:
            assert read_events(response)[-1] == ("done", {"finish_reason": "length"})
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/" in output
    assert "provider scripted, model scripted-1" in output


def test_python_dash_m_example_app_explains_a_missing_key() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "example_app"],
        cwd=PROJECT_ROOT,
        env=_clean_env(LLM_SSE_PROVIDER="openai", OPENAI_API_KEY=""),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "LLM_SSE_API_KEY" in run.stderr


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, ("127.0.0.1", 8000)),
        ([], {"HOST": "0.0.0.0", "PORT": "9000"}, ("0.0.0.0", 9000)),
        ([], {"PORT": "9000", "LLM_SSE_PORT": "9001", "LLM_SSE_HOST": "::1"}, ("::1", 9001)),
        (["--host", "localhost", "--port", "7"], {"LLM_SSE_PORT": "9001"}, ("localhost", 7)),
    ],
)
def test_address_comes_from_the_command_line_then_the_environment(
    argv: list[str], env: dict[str, str], expected: tuple[str, int]
) -> None:
    args = parse_args(argv, env)
    assert (args.host, args.port) == expected
