"""A real HTTP/1.1 upstream that misbehaves on command.

``FakeUpstream`` listens on 127.0.0.1 (port 0) and runs its own asyncio loop in a daemon thread,
so sync and async tests can both use it. It is written on raw asyncio streams, not on an HTTP
framework, so a test controls every byte, every write boundary and the connection lifecycle::

    with FakeUpstream() as up:
        up.push(openai_stream(["Hel", "lo"], split=3, pace=0.01))    # next request gets this
        up.push([Respond(), Send(b"data: {}\\n\\n"), Hang()])        # the one after, this
        up.default = [Body(429, b'{"error": {}}', {"retry-after": "1"})]  # and then, this
        ... point the code under test at up.url ...
        up.requests[0].json["stream"]          # what the client sent
        up.wait_closed(timeout=1.0)            # the client hung up on the Hang within 1 s

A script is a sequence of steps run in order for one request (see ``Step``). Misbehaviour is one
step away: ``Sleep``/``Hang`` stall, ``Drop`` resets mid-stream, ``Send(b"\\xff not json\\n\\n")``
is garbage, ``Body(500, b"<html>", {"content-type": "text/html"})`` is an HTML error page,
``trickle()`` never ends, and ``ending=Hang()`` keeps the connection open after ``[DONE]``.

While a script runs, a watcher task reads the connection: the request has been fully read by
then, so EOF or a reset means the client went away. It records ``closed_by="client"`` and the
time, and cancels the script even in the middle of a ``Sleep`` or ``Hang``. That is how a test
proves "the upstream was closed within 1 s after the browser left".

Known limits: no TLS, no HTTP/2, no ``Expect: 100-continue``; a request head larger than 64 KiB
is malformed; TCP_NODELAY keeps write boundaries as the client sees them only "as far as
practical" (loopback may still coalesce segments when the reader is slow).
"""

from __future__ import annotations

from .openai_scripts import openai_stream, sse_bytes, trickle, zhipu_stream
from .upstream_server import FakeUpstream
from .upstream_steps import (
    Body,
    ConnectionRecord,
    Drop,
    End,
    Hang,
    RecordedRequest,
    Respond,
    Script,
    Send,
    Sleep,
    Step,
)

__all__ = [
    "Body",
    "ConnectionRecord",
    "Drop",
    "End",
    "FakeUpstream",
    "Hang",
    "RecordedRequest",
    "Respond",
    "Script",
    "Send",
    "Sleep",
    "Step",
    "openai_stream",
    "sse_bytes",
    "trickle",
    "zhipu_stream",
]
