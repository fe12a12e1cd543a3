"""The AI SDK's documented OpenAI provider, ``createOpenAI({baseURL})(model)``, which speaks the
Responses API, against a real mount and a fake upstream (tests/js/responses/run.mjs):
``streamText`` with images and ``generateObject`` with a zod schema.

Pinned: ``ai`` 6.0.325 and ``@ai-sdk/openai`` 3.0.141, the newest releases that run on
Node 20 (``ai`` 7 and ``@ai-sdk/openai`` 4 need Node 22). The SDK validates every chunk with
its own zod schemas: a missing field fails the run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_sse_mount.providers.openai import OpenAICompatible

from .conftest import unavailable
from .support.fake_upstream import FakeUpstream, openai_stream
from .support.running import Running
from .support.servers import ServerThread

JS_DIR = Path(__file__).parent / "js" / "responses"

pytestmark = pytest.mark.node


@pytest.fixture(scope="session")
def responses_js(node_bin: str) -> Path:
    """``tests/js/responses`` with its pinned packages installed (once per lockfile)."""
    npm = shutil.which("npm")
    assert npm is not None  # node_bin has checked
    lock = (JS_DIR / "package-lock.json").read_bytes() + (JS_DIR / "package.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    stamp = JS_DIR / "node_modules" / ".llm-sse-mount-lock"
    if stamp.exists() and stamp.read_text() == digest:
        return JS_DIR
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"npm ci in {JS_DIR} failed: {exc}")
    if done.returncode != 0:
        unavailable(f"npm ci in {JS_DIR} failed:\n{done.stderr[-2000:]}")
    stamp.write_text(digest)
    return JS_DIR


def run_js(js: Path, node: str, mode: str, base_url: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, "run.mjs", mode, base_url], cwd=js, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"run.mjs {mode} exited {done.returncode}:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_stream_text_with_images_and_reasoning(
    serve_app: Callable[..., ServerThread],
    fake_upstream: FakeUpstream,
    responses_js: Path,
    node_bin: str,
) -> None:
    fake_upstream.push(
        openai_stream(
            [{"reasoning_content": "先想一想 "}, "Hello, ", "世界 ✨"],
            usage={"prompt_tokens": 3, "completion_tokens": 2},
        )
    )
    m = Running(serve_app, OpenAICompatible(fake_upstream.url + "/v1", "k"))
    out = run_js(responses_js, node_bin, "stream", m.base_url)
    assert out["text"] == "Hello, 世界 ✨"
    assert out["reasoning"] == "先想一想 "
    assert out["finishReason"] == "stop"
    assert (out["usage"]["inputTokens"], out["usage"]["outputTokens"]) == (3, 2)
    parts = fake_upstream.requests[0].json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is in these?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://images.example/cat.jpg"}}
    assert parts[2]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert m.record().finish_reason == "stop"


def test_generate_object_sends_the_schema_and_parses_the_answer(
    serve_app: Callable[..., ServerThread],
    fake_upstream: FakeUpstream,
    responses_js: Path,
    node_bin: str,
) -> None:
    fake_upstream.push(openai_stream(['{"city":"Oslo",', '"days":3}']))
    m = Running(serve_app, OpenAICompatible(fake_upstream.url + "/v1", "k"))
    out = run_js(responses_js, node_bin, "object", m.base_url)
    assert out == {"object": {"city": "Oslo", "days": 3}, "finishReason": "stop"}
    fmt = fake_upstream.requests[0].json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Trip"
    assert fmt["json_schema"]["schema"]["required"] == ["city", "days"]
