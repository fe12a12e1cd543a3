"""The host app of the resume tests: a Starlette app with the mount at ``/llm`` answering one
long known text, and a tiny page at ``/`` whose ``EventSource`` writes down what it receives.

In a child process (several workers sharing Redis)::

    serve_subprocess("tests.support.resume_app:make_app", factory=True, env={
        "LLM_SSE_STORE": redis_url, "LLM_SSE_STORE_PREFIX": prefix,
        "LLM_SSE_RESUME_GRACE": "5", "RESUME_TEST_PACE": "0.01"})

Everything else comes from ``LLMMount.from_env`` (``LLM_SSE_*``).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from llm_sse_mount import LLMMount, Scripted

__all__ = ["ANSWER", "PAGE", "host_app", "make_app", "scripted"]

#: Long enough to cut many times; CJK, emoji, quotes and newlines so a lost, repeated or
#: re-split frame shows in a byte comparison.
ANSWER = (
    "Resuming a stream means: no token lost, none repeated. 断线重连之后，回答从中断的地方继续，"
    "一个字也不多，一个字也不少。\n\n"
    "1. The phone changes networks 📶 — the EventSource reconnects with Last-Event-ID.\n"
    '2. 笔记本合上又打开，连接被代理重置 🔌，"quotes" and \\backslashes\\ survive.\n'
    "3. Another worker answers the reconnect: the frames live in Redis, not in one process.\n\n"
    "Ende gut, alles gut. 完。✨"
)


def scripted(pace: float) -> Scripted:
    return Scripted(answer=ANSWER, reasoning="", pace=pace, jitter=0.0)


#: The browser test's page: opens an EventSource on /llm/chat and records every frame.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>resume</title>
<pre id="out"></pre>
<script>
  window.frames_seen = [];
  window.opens = 0;
  window.finished = false;
  const text = [];
  const params = new URLSearchParams(location.search);
  const prompt = params.get("prompt") || "hi";
  // keep=1: never close, to see the browser stop by itself (204 after done).
  const keep = params.get("keep") === "1";
  const source = new EventSource("/llm/chat?prompt=" + encodeURIComponent(prompt));
  window.source = source;
  source.onopen = () => { window.opens += 1; };
  for (const name of ["start", "delta", "usage", "error", "done"]) {
    source.addEventListener(name, (e) => {
      window.frames_seen.push({id: e.lastEventId, event: name, data: JSON.parse(e.data)});
      if (name === "delta") text.push(JSON.parse(e.data).text);
      if (name === "done") { if (!keep) source.close(); window.finished = true; }
      window.answer = text.join("");
      document.getElementById("out").textContent = window.answer;
    });
  }
</script>
"""


def host_app(llm: LLMMount) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    return Starlette(
        routes=[Route("/", page), Mount("/llm", app=llm)],
        lifespan=llm.lifespan,
    )


def make_app() -> Starlette:
    """uvicorn factory: the mount from ``LLM_SSE_*``, answering ``ANSWER``."""
    pace = float(os.environ.get("RESUME_TEST_PACE", "0.01"))
    return host_app(LLMMount.from_env(provider=scripted(pace)))
