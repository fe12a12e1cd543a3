"""The steps of a fake-upstream script, and what the server records (see ``fake_upstream``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Respond:
    """Send the status line and headers.

    ``chunked=True`` uses ``Transfer-Encoding: chunked`` (keep-alive possible); ``False`` uses a
    body delimited by closing the connection. ``headers`` override the defaults
    (``content-type: text/event-stream``, ``cache-control: no-cache``), case-insensitively.
    A ``Send``/``End`` without a preceding ``Respond`` implies ``Respond()``.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunked: bool = True


@dataclass(frozen=True)
class Send:
    """One ``write()`` + ``drain()``: one HTTP chunk when chunked. Empty data is skipped."""

    data: bytes


@dataclass(frozen=True)
class Sleep:
    """Pause the script (the client closing meanwhile is still noticed)."""

    seconds: float


@dataclass(frozen=True)
class Hang:
    """Stop sending but keep the connection open until the client closes it."""


@dataclass(frozen=True)
class Drop:
    """Abort the connection mid-response (``transport.abort()``, no terminating chunk).

    By default the peer sees a FIN (httpx: ``RemoteProtocolError``, incomplete body);
    ``reset=True`` sets ``SO_LINGER`` 0 first so it sees a RST (httpx: ``ReadError``). A RST may
    make the client's kernel discard bytes it has not read yet.
    """

    reset: bool = False


@dataclass(frozen=True)
class End:
    """Finish the body properly: the terminating ``0`` chunk, then keep-alive.

    With ``chunked=False`` the end of the body is the server closing the connection. A script
    that runs out of steps ends with an implicit ``End()``.
    """


@dataclass(frozen=True)
class Body:
    """A complete, non-streaming response with ``Content-Length`` (keep-alive).

    For 429 / 500 / HTML / empty / JSON bodies; ``content-type`` defaults to
    ``application/json``. Example: ``Body(429, b'{"error": {}}', {"Retry-After": "2"})``.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Step = Respond | Send | Sleep | Hang | Drop | End | Body
#: A script may be any iterable of steps, also an endless generator (see ``trickle``). Scripts
#: given to ``push`` are consumed once; ``FakeUpstream.default`` is re-iterated per request, so it
#: must be a re-iterable sequence.
Script = Iterable[Step]

# ------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it. ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    connection_id: int
    received_at: float


@dataclass
class ConnectionRecord:
    """One TCP connection. Times are ``time.monotonic()`` values.

    ``last_write_at`` is when the server last wrote a byte or started a ``Hang`` (``opened_at``
    before that); ``closed_by`` is ``"client"`` (EOF/reset seen) or ``"server"`` (``Drop``,
    close-delimited body, malformed request, shutdown).
    """

    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: Literal["client", "server"] | None = None
    last_write_at: float = 0.0
    requests: int = 0


# -------------------------------------------------------------------------------------- server
