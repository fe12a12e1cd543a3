"""SSEDecoder against the WHATWG "Parsing/Interpreting an event stream" rules.

Besides the spec's own examples, a deliberately naive reference decoder written straight from the
spec text (whole stream decoded first, regex line split, one line at a time) is the oracle for
the fuzz tests: the real decoder must agree with it however the bytes are chunked.
"""

from __future__ import annotations

import itertools
import re
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_sse_mount.errors import UpstreamError
from llm_sse_mount.sse_decoder import ServerSentEvent, SSEDecodeError, SSEDecoder

# To measure (not asserted anywhere; timings are machine-dependent):
#   python -m timeit -s "from tests.test_sse_decoder import bench_setup as s; d, c = s()" \
#       "d(c)"          # one call decodes a 64-token OpenAI-style stream fed chunk by chunk


def bench_setup() -> tuple[Callable[[list[bytes]], int], list[bytes]]:
    chunks = [
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"tok%d"},"finish_reason":null}]}\n\n' % i
        for i in range(64)
    ] + [b"data: [DONE]\n\n"]

    def run(chunks: list[bytes]) -> int:
        decoder = SSEDecoder()
        n = 0
        for chunk in chunks:
            n += len(decoder.feed(chunk))
        return n

    return run, chunks


def decode(*chunks: bytes, **limits: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**limits)
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def reference_decode(raw: bytes) -> list[ServerSentEvent]:
    """The spec, transcribed naively: decode, strip one BOM, split lines, interpret."""
    text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)
    lines.pop()  # an unterminated last line is never processed ("pending data is discarded")
    events: list[ServerSentEvent] = []
    data = event_type = last_id_buffer = ""
    retry: int | None = None
    for line in lines:
        if line == "":
            if data == "":
                data = event_type = ""
                retry = None
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(ServerSentEvent(event_type or "message", data, last_id_buffer, retry))
            data = event_type = ""
            retry = None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_id_buffer = value
        elif field == "retry" and value != "" and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


# --- the spec's own examples ----------------------------------------------------------------


def test_spec_example_stock_ticker_joins_data_lines_with_lf() -> None:
    raw = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert decode(raw) == [ServerSentEvent(data="YHOO\n+2\n10")]


def test_spec_example_test_stream_comment_ids_and_leading_space() -> None:
    raw = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert decode(raw) == [
        ServerSentEvent(data="first event", id="1"),
        ServerSentEvent(data="second event", id=""),
        ServerSentEvent(data=" third event", id=""),
    ]


def test_spec_example_data_lines_without_values() -> None:
    # First block: data "", middle: a single LF, last: discarded (no blank line after it).
    raw = b"data\n\ndata\ndata\n\ndata:"
    assert decode(raw) == [ServerSentEvent(data=""), ServerSentEvent(data="\n")]


def test_spec_example_space_after_colon_is_optional() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [ServerSentEvent(data="test")] * 2


def test_spec_example_event_types() -> None:
    raw = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    assert [(e.event, e.data) for e in decode(raw)] == [
        ("add", "73857293"),
        ("remove", "2153"),
        ("add", "113411"),
    ]


# --- line ends -------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_end_style_gives_the_same_events(eol: bytes) -> None:
    raw = eol.join([b"event: a", b"data: 1", b"data: 2", b"", b"id: 7", b"data: 3", b"", b""])
    assert decode(raw) == [
        ServerSentEvent(event="a", data="1\n2"),
        ServerSentEvent(data="3", id="7"),
    ]


def test_mixed_line_ends_in_one_stream() -> None:
    assert decode(b"data: a\rdata: b\r\ndata: c\n\r\n") == [ServerSentEvent(data="a\nb\nc")]


def test_cr_then_lf_split_across_chunks_is_one_line_end() -> None:
    # Counted as two line ends, the LF would be a blank line and dispatch "a" on its own.
    assert decode(b"data: a\r", b"\ndata: b\r", b"", b"\n\r", b"\n") == [
        ServerSentEvent(data="a\nb")
    ]


def test_cr_at_chunk_end_dispatches_without_waiting_for_the_next_chunk() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"\ndata: b\n\n") == [ServerSentEvent(data="b")]


def test_cr_lf_split_then_lone_lf_is_a_blank_line() -> None:
    assert decode(b"data: a\r", b"\n", b"\n") == [ServerSentEvent(data="a")]


def test_str_splitlines_separators_are_not_line_ends() -> None:
    value = "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i"
    assert decode(f"data: {value}\n\n".encode()) == [ServerSentEvent(data=value)]


# --- UTF-8 -----------------------------------------------------------------------------------

MULTIBYTE = (
    "event: 回答\ndata: 你好，世界 😀\r\nid: 🆔1\rdata: é\u2028ü\n\n"
    "data: \U0001f469\u200d\U0001f467 end\r\n\r\n"
).encode()


def test_every_split_position_of_a_multibyte_stream_gives_identical_events() -> None:
    whole = decode(MULTIBYTE)
    assert whole == [
        ServerSentEvent(event="回答", data="你好，世界 😀\né\u2028ü", id="🆔1"),
        ServerSentEvent(data="\U0001f469\u200d\U0001f467 end", id="🆔1"),
    ]
    for i in range(len(MULTIBYTE) + 1):
        for j in range(i, len(MULTIBYTE) + 1):
            assert decode(MULTIBYTE[:i], MULTIBYTE[i:j], MULTIBYTE[j:]) == whole, (i, j)


def test_byte_by_byte_feeding_gives_identical_events() -> None:
    chunks = [MULTIBYTE[i : i + 1] for i in range(len(MULTIBYTE))]
    assert decode(*chunks) == decode(MULTIBYTE)


def test_invalid_utf8_becomes_replacement_characters_without_an_exception() -> None:
    raw = b"data: a\xffb\xc3(\xe4\xbd\nevent: \xed\xa0\x80\ndata:\xf0\x9f\x98\n\n"
    events = decode(raw)
    # One U+FFFD per maximal invalid subpart, as the WHATWG UTF-8 decoder does.
    assert events == [ServerSentEvent(event="\ufffd" * 3, data="a\ufffdb\ufffd(\ufffd\n\ufffd")]
    assert events == reference_decode(raw)


def test_leading_bom_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_bom_split_across_chunks_is_stripped(cut: int) -> None:
    raw = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent(data="x")]
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == [ServerSentEvent(data="x")]


def test_only_the_first_bom_is_stripped() -> None:
    # The second BOM stays part of the line, so its field name is "\ufeffdata": ignored.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    assert decode(b"\xef\xbb", b"\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_after_the_start_is_kept() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\ndata: \xef\xbb\xbfc\n\n") == [
        ServerSentEvent(data="\ufeffc")
    ]


def test_truncated_bom_is_not_a_bom() -> None:
    assert decode(b"\xef\xbb", b"data: x\n\n") == []  # line is "\ufffddata: x"
    assert decode(b"\xef\xbb", b"\n", b"data: x\n\n") == [ServerSentEvent(data="x")]


# --- fields ----------------------------------------------------------------------------------


def test_id_containing_nul_is_ignored() -> None:
    raw = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert [e.id for e in decode(raw)] == ["1", "1"]


def test_id_persists_across_events_and_empty_id_resets_it() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 5\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n")
    assert [e.id for e in events] == ["5", "5", ""]
    assert decoder.last_event_id == ""


def test_last_event_id_is_updated_at_the_blank_line_even_without_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 9\n") == []
    assert decoder.last_event_id == ""  # not dispatched yet: a lost connection resumes from ""
    assert decoder.feed(b"\n") == []
    assert decoder.last_event_id == "9"


@pytest.mark.parametrize(
    "value",
    [b"1a", b"-1", b"+1", b" 100", b"1.5", b"", b"1_000", "١٢".encode(), "１".encode()],
)
def test_retry_with_anything_but_ascii_digits_is_ignored(value: bytes) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 300\n\nretry: " + value + b"\ndata: x\n\n")
    assert events == [ServerSentEvent(data="x", retry=None)]
    assert decoder.retry == 300


def test_retry_sets_the_reconnection_time_and_the_events_block_value() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    events = decoder.feed(b"retry: 0100\ndata: a\n\ndata: b\n\nretry:2000\n\n")
    assert events == [ServerSentEvent(data="a", retry=100), ServerSentEvent(data="b")]
    assert decoder.retry == 2000


def test_field_without_colon_has_an_empty_value() -> None:
    raw = b"event: x\nid: 3\nevent\nid\ndata\n\n"
    assert decode(raw) == [ServerSentEvent(event="message", data="", id="")]


def test_only_one_leading_space_is_removed_from_a_value() -> None:
    assert decode(b"event:  a \ndata:   b\t\n\n") == [ServerSentEvent(event=" a ", data="  b\t")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    raw = b": ping\n:\nfoo: bar\nDATA: no\ndata : no\nEvent: no\ndata: yes\n\n"
    assert decode(raw) == [ServerSentEvent(data="yes")]


def test_blank_line_without_data_dispatches_nothing_and_resets_the_event_type() -> None:
    assert decode(b"event: a\n\ndata: b\n\n\n\n") == [ServerSentEvent(data="b")]


def test_unfinished_last_event_is_discarded_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\ndata: c\n") == [ServerSentEvent(data="a")]
    assert decoder.close() == []
    assert decode(b"data: a\n\ndata: b") == [ServerSentEvent(data="a")]


def test_feeding_after_close_parses_a_new_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 4\nretry: 50\ndata: a\n\ndata: half")
    decoder.close()
    assert (decoder.last_event_id, decoder.retry) == ("4", 50)
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent(data="b")]


def test_openai_style_stream_in_typical_chunks() -> None:
    run, chunks = bench_setup()
    assert run(chunks) == 65
    events = decode(b"".join(chunks))
    assert events[3].data.endswith('"content":"tok3"},"finish_reason":null}]}')
    assert events[-1] == ServerSentEvent(data="[DONE]")


# --- limits ----------------------------------------------------------------------------------


def test_error_is_an_upstream_error_with_a_stable_code() -> None:
    with pytest.raises(UpstreamError) as info:
        decode(b"data: " + b"x" * 100 + b"\n\n", max_line_bytes=50)
    assert isinstance(info.value, SSEDecodeError)
    assert info.value.code == "upstream_bad_stream"
    assert info.value.status == 502
    assert "longer than 50 bytes" in info.value.message


def test_line_at_the_limit_is_accepted_and_one_byte_more_raises() -> None:
    line = b"data: " + b"x" * 94  # exactly 100 bytes
    assert decode(line + b"\r\n\r\n", max_line_bytes=100) == [ServerSentEvent(data="x" * 94)]
    with pytest.raises(SSEDecodeError):
        decode(line + b"y\n\n", max_line_bytes=100)
    with pytest.raises(SSEDecodeError):  # the same, arriving in pieces
        decode(line[:50], line[50:], b"y", b"\n\n", max_line_bytes=100)
    with pytest.raises(SSEDecodeError):  # completed by the chunk that brings its last byte
        decode(line[:50], line[50:] + b"y\n\n", max_line_bytes=100)


def test_line_limit_raises_while_the_line_is_unfinished() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    decoder.feed(b"data: ok\n\ndata: ")
    for _ in range(9):  # 6 + 9 * 100 = 906 bytes pending: still fine
        assert decoder.feed(b"x" * 100) == []
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"x" * 100)


def test_ten_megabyte_line_without_newline_raises_without_holding_it() -> None:
    decoder = SSEDecoder()  # 1 MiB line limit

    def feed_ten_mebibytes() -> None:
        for _ in range(160):  # 160 * 64 KiB, each chunk a fresh object the decoder could keep
            decoder.feed(bytes(65536))

    tracemalloc.start()
    try:
        with pytest.raises(SSEDecodeError):
            feed_ten_mebibytes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20


def test_event_data_limit_raises() -> None:
    ok = b"data: 123456789\n" * 10  # 10 values of 9 bytes + LF = 100 bytes of data buffer
    assert decode(ok + b"\n", max_event_bytes=100) == [
        ServerSentEvent(data="\n".join(["123456789"] * 10))
    ]
    with pytest.raises(SSEDecodeError, match="larger than 100 bytes"):
        decode(ok + b"data\n\n", max_event_bytes=100)


# --- properties ------------------------------------------------------------------------------

LINE_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
    | st.sampled_from(":\ufeff\x00 \x85\u2028你😀"),
    max_size=12,
)
EVENTS = st.lists(
    st.tuples(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=8),
        st.lists(LINE_TEXT, min_size=1, max_size=3),
        st.none() | LINE_TEXT.filter(lambda s: "\0" not in s),
        st.none() | st.integers(0, 10**12),
    ),
    max_size=6,
)


def encode(events: list[tuple[str, list[str], str | None, int | None]], eol: str) -> bytes:
    out = [": comment"]
    for event_type, data_lines, event_id, retry in events:
        out.append(f"event: {event_type}")
        out += [f"data: {line}" for line in data_lines]
        if event_id is not None:
            out.append(f"id: {event_id}")
        if retry is not None:
            out.append(f"retry: {retry}")
        out.append("")
    return "".join(line + eol for line in out).encode()


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, eol=st.sampled_from(["\n", "\r\n", "\r"]), data=st.data())
def test_split_stream_decodes_like_the_unsplit_one(
    events: list[tuple[str, list[str], str | None, int | None]],
    eol: str,
    data: st.DataObject,
) -> None:
    raw = encode(events, eol)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    expected: list[ServerSentEvent] = []
    last_id = ""
    for event_type, data_lines, event_id, retry in events:
        last_id = last_id if event_id is None else event_id
        expected.append(
            ServerSentEvent(event_type or "message", "\n".join(data_lines), last_id, retry)
        )
    assert decode(raw) == expected
    assert decode(*split_at(raw, cuts)) == expected


TOKENS = st.sampled_from(
    [
        b"data",
        b"event",
        b"id",
        b"retry",
        b":",
        b": ",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"x",
        b"07",
        b"\x00",
        b"\xef\xbb\xbf",
        b"\xef\xbb",
        b"\xe4\xbd\xa0",
        b"\xe4",
        b"\xff",
        b"\xf0\x9f\x98\x80",
    ]
)


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(TOKENS, max_size=40), data=st.data())
def test_arbitrary_bytes_decode_like_the_naive_spec_transcription(
    parts: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(parts)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    assert decode(*split_at(raw, cuts)) == reference_decode(raw)


def test_docstring_example_runs() -> None:
    import doctest

    from llm_sse_mount import sse_decoder

    assert doctest.testmod(sse_decoder).failed == 0
