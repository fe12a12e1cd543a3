"""Incremental ``text/event-stream`` decoder: bytes in, events out.

Follows the WHATWG HTML "Parsing an event stream" and "Interpreting an event stream" rules to
the letter; the upstream LLM APIs (OpenAI, Zhipu GLM, Anthropic) are parsed with it once per
network chunk, so the common case (a few LF-terminated ``data:`` lines) is kept cheap.

Lines are split and parsed as *bytes* and only field values are decoded. That is exactly
equivalent to decoding the whole stream first: CR, LF, ``:`` and space are ASCII, so they can
never sit inside a multi-byte sequence and they end any invalid one, and the UTF-8 decoder
(WHATWG and Python agree: one U+FFFD per maximal invalid subpart) has no state across them.
Working on bytes is what lets a character split across chunks come out whole for free, and
lets the size limits count real bytes.

Deliberate divergence: a ``retry`` value of more than 4300 significant digits (Python's
int-from-string limit) is ignored instead of being converted; no server means it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_sse_mount.errors import UpstreamError

__all__ = ["SSEDecodeError", "SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_MAX_RETRY_DIGITS = 4300


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event, as an ``EventSource`` would deliver it."""

    event: str = "message"
    data: str = ""
    #: The last event ID in force at dispatch ("" when none was ever set).
    id: str = ""
    #: The retry value set in this event's block, if any.
    retry: int | None = None


class SSEDecodeError(UpstreamError):
    """The upstream's event stream cannot be decoded within our limits."""

    code = "upstream_bad_stream"


class SSEDecoder:
    """Incremental, spec-exact Server-Sent Events decoder.

    Feed it network chunks as they arrive; it returns the events each chunk completes.
    Chunks may split lines, CRLF pairs and UTF-8 characters anywhere.

    >>> decoder = SSEDecoder()
    >>> decoder.feed(b"event: delta\\ndata: \\xe4\\xbd")
    []
    >>> decoder.feed(b"\\xa0\\xe5\\xa5\\xbd\\n\\n")
    [ServerSentEvent(event='delta', data='你好', id='', retry=None)]
    >>> decoder.close()
    []

    A line longer than ``max_line_bytes`` or an event whose data exceeds ``max_event_bytes``
    raises :class:`SSEDecodeError` (checked while the line is still unfinished, so a stream
    without newlines cannot grow memory without bound). The decoder is unusable afterwards.
    """

    __slots__ = (
        "_at_start",
        "_block_retry",
        "_data",
        "_data_size",
        "_event_type",
        "_id_buffer",
        "_last_event_id",
        "_max_event",
        "_max_line",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
    )

    def __init__(self, *, max_line_bytes: int = 1 << 20, max_event_bytes: int = 8 << 20) -> None:
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._last_event_id = ""
        self._retry: int | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        # Per-stream state; the spec starts every connection with empty buffers.
        # Bytes seen so far while a leading BOM is still possible; None once past the start.
        self._at_start: bytes | None = b""
        self._skip_lf = False  # last chunk ended in CR: a LF opening the next one ends no line
        self._pending: list[bytes] = []  # pieces of the unfinished line (never hold CR/LF)
        self._pending_size = 0
        self._data: list[bytes] = []  # data values; joined with LF at dispatch
        self._data_size = 0
        self._event_type = ""
        self._id_buffer = ""
        self._block_retry: int | None = None

    @property
    def last_event_id(self) -> str:
        """The last event ID string, as updated at each blank line (what to resume from)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in force: the last valid ``retry`` value, in milliseconds."""
        return self._retry

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one chunk and return the events it completes (often none)."""
        if self._at_start is not None:
            # One BOM is stripped only at the very start, even if its bytes trickle in.
            head = self._at_start + data
            if len(head) < 3 and _BOM.startswith(head):
                self._at_start = head
                return []
            self._at_start = None
            data = head[3:] if head.startswith(_BOM) else head
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
        if b"\r" in data:
            # A CR at the very end already ended its line; remember to swallow a following LF.
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        tail = lines.pop()
        if self._pending_size + len(data) > self._max_line:
            self._check_line_lengths(lines, tail)
        if self._pending and lines:
            lines[0] = b"".join(self._pending) + lines[0]
            self._pending = []
            self._pending_size = 0
        if tail:
            self._pending.append(tail)
            self._pending_size += len(tail)
        return self._process(lines) if lines else []

    def close(self) -> list[ServerSentEvent]:
        """End of input: the unfinished last event is discarded, as the spec requires.

        ``last_event_id`` and ``retry`` survive; feeding again parses a new stream.
        """
        self._reset_stream()
        return []

    def _check_line_lengths(self, lines: list[bytes], tail: bytes) -> None:
        # Only reached when this chunk could hold an over-long line, so the common case pays
        # one comparison. The pending prefix belongs to the first complete line, or the tail.
        if lines:
            longest = max(self._pending_size + len(lines[0]), len(tail), *map(len, lines[1:]))
        else:
            longest = self._pending_size + len(tail)
        if longest > self._max_line:
            raise SSEDecodeError(
                f"upstream event stream line is longer than {self._max_line} bytes",
            )

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                # Blank line: dispatch. Inlined (not a method) because it runs once per token.
                self._last_event_id = self._id_buffer
                retry, self._block_retry = self._block_retry, None
                data = self._data
                if data:  # no data, no event: the type buffer is still reset below
                    text = data[0] if len(data) == 1 else b"\n".join(data)
                    events.append(
                        ServerSentEvent(
                            self._event_type or "message",
                            text.decode("utf-8", "replace"),
                            self._last_event_id,
                            retry,
                        )
                    )
                    self._data = []
                    self._data_size = 0
                self._event_type = ""
                continue
            if line.startswith(b"data: "):  # the hot path: one check instead of a field parse
                name, value = b"data", line[6:]
            else:
                colon = line.find(b":")
                if colon == 0:
                    continue  # comment
                if colon < 0:
                    name, value = line, b""
                else:
                    name, value = line[:colon], line[colon + 1 :]
                    if value.startswith(b" "):
                        value = value[1:]
            if name == b"data":
                self._data_size += len(value) + 1
                if self._data_size > self._max_event:
                    raise SSEDecodeError(
                        f"upstream event data is larger than {self._max_event} bytes",
                    )
                self._data.append(value)
            elif name == b"event":
                self._event_type = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\x00" not in value:
                    self._id_buffer = value.decode("utf-8", "replace")
            # bytes.isdigit() is ASCII-only and False for b"", exactly the spec's test.
            elif name == b"retry" and value.isdigit():
                digits = value.lstrip(b"0") or b"0"
                if len(digits) <= _MAX_RETRY_DIGITS:
                    self._retry = self._block_retry = int(digits)
        return events
