"""``llm_sse_mount/static/client.js`` without a browser, under Node's own test runner, and its
SSE parser checked against the Python decoder on the same byte streams."""

from __future__ import annotations

import base64
import itertools
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llm_sse_mount import SSEDecoder

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = ROOT / "tests" / "js"


def test_client_js_passes_its_node_tests(node_bin: str) -> None:
    run = subprocess.run(
        [node_bin, "--test", str(JS_TESTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "# fail 0" in run.stdout
    assert "# pass 0" not in run.stdout  # the runner found the tests


# A byte stream is built line by line: every field form, every line ending, characters of 2, 3
# and 4 bytes, lone halves of characters, a BOM, NUL; then cut into chunks at random offsets.
FIELDS = [b"data: ", b"data:", b"data", b"event: ", b"event:", b"id: ", b"id", b"retry: ", b":"]
VALUES = [
    b"x",
    b" ",
    b":",
    b"delta",
    b"1500",
    b"15x",
    b"s:1",
    b"\x00",
    b"\xc3\xa9",  # é
    "世界".encode(),
    "🎉".encode(),
    b"\xe4\xb8",  # the first two bytes of a three-byte character, alone
    b"\xff",
    b"\xef\xbb\xbf",
]
ENDINGS = [b"\n", b"\r", b"\r\n"]


def _case(rng: random.Random) -> list[bytes]:
    lines = []
    for _ in range(rng.randint(1, 16)):
        if rng.random() < 0.3:
            line = b""  # a blank line dispatches
        else:
            line = rng.choice(FIELDS) + b"".join(rng.choices(VALUES, k=rng.randint(0, 3)))
        lines.append(line + rng.choice(ENDINGS))
    stream = b"".join(lines)
    if rng.random() < 0.1:
        stream = b"\xef\xbb\xbf" + stream
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 8))))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def _python(chunks: list[bytes]) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.close()
    return [{"event": e.event, "data": e.data, "id": e.id, "retry": e.retry} for e in events]


def test_js_parser_agrees_with_the_python_decoder(node_bin: str) -> None:
    rng = random.Random(20261123)
    cases = [_case(rng) for _ in range(1500)]
    cases += [[b"\xef\xbb", b"\xbfdata: bom split\n\n"], [b"data: a\r", b"\n\r", b"\n"]]
    payload = json.dumps([[base64.b64encode(c).decode() for c in case] for case in cases])
    run = subprocess.run(
        [node_bin, str(JS_TESTS / "decode_cases.mjs")],
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    js = json.loads(run.stdout)
    # The generator makes streams with every kind of event in them.
    events = [event for case in js for event in case]
    assert len(events) > 500
    assert any(e["retry"] is not None for e in events)
    assert any(e["id"] for e in events)
    assert any(e["event"] != "message" for e in events)
    assert any("\ufffd" in e["data"] for e in events)
    for case, got in zip(cases, js, strict=True):
        assert got == _python(case), case
