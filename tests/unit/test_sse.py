"""The SSE reader: line splitting across chunks and the event-stream field rules."""

from __future__ import annotations

import pytest

from jobfleet.client.sse import SSEEvent, SSEParser, iter_events, iter_lines


def events_of(text: str) -> list[SSEEvent]:
    return list(iter_events(iter_lines([text.encode()])))


def test_one_event_with_id_type_and_data() -> None:
    [event] = events_of('id: 7\nevent: running\ndata: {"id": 7}\n\n')
    assert event == SSEEvent(event="running", data='{"id": 7}', id="7")
    assert event.json() == {"id": 7}


def test_default_type_is_message() -> None:
    assert events_of("data: x\n\n") == [SSEEvent(event="message", data="x")]


def test_data_lines_join_with_newlines() -> None:
    [event] = events_of("data: first\ndata:second\ndata\n\n")
    assert event.data == "first\nsecond\n"


def test_only_one_leading_space_is_dropped() -> None:
    [event] = events_of("data:  two spaces\n\n")
    assert event.data == " two spaces"


def test_colon_inside_the_value_is_kept() -> None:
    [event] = events_of('data: {"a": "b:c"}\n\n')
    assert event.json() == {"a": "b:c"}


def test_comments_are_ignored_and_do_not_dispatch() -> None:
    assert events_of(": ping\n\n: connected\n\n") == []
    [event] = events_of(": hello\ndata: x\n: mid\n\n")
    assert event.data == "x"


def test_blank_line_without_data_dispatches_nothing_and_resets_type() -> None:
    assert events_of("event: end\n\ndata: y\n\n") == [SSEEvent(event="message", data="y")]


def test_empty_data_field_still_dispatches() -> None:
    assert events_of("event: end\ndata:\n\n") == [SSEEvent(event="end", data="")]


def test_last_event_id_persists_until_replaced() -> None:
    got = events_of("id: 1\ndata: a\n\ndata: b\n\nid: 3\ndata: c\n\n")
    assert [(e.id, e.data) for e in got] == [("1", "a"), ("1", "b"), ("3", "c")]


def test_id_with_nul_is_ignored() -> None:
    parser = SSEParser()
    got = list(iter_events(["id: 1", "data: a", "", "id: 2\0", "data: b", ""], parser))
    assert [e.id for e in got] == ["1", "1"]
    assert parser.last_event_id == "1"


def test_retry_field_sets_reconnection_delay_only_when_numeric() -> None:
    parser = SSEParser()
    list(iter_events(["retry: 1500", "retry: soon", "retry: ²"], parser))
    assert parser.retry == 1500


def test_unknown_fields_are_ignored() -> None:
    assert events_of("foo: bar\ndata: x\n\n") == [SSEEvent(event="message", data="x")]


def test_event_cut_off_by_end_of_stream_is_dropped() -> None:
    assert events_of("data: done\n\ndata: partial\n") == [SSEEvent(event="message", data="done")]
    assert events_of("data: unterminated") == []


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_every_line_ending(eol: str) -> None:
    text = f"id: 1{eol}event: log{eol}data: x{eol}{eol}"
    assert events_of(text) == [SSEEvent(event="log", data="x", id="1")]


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    chunks = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]
    assert list(iter_lines(chunks)) == ["data: a", "data: b", ""]


def test_lone_cr_at_end_of_stream_ends_the_line() -> None:
    assert list(iter_lines([b"data: a\r\r"])) == ["data: a", ""]


def test_only_cr_and_lf_break_lines() -> None:
    payload = "x\u2028y\x0cz\x85"
    assert list(iter_lines([f"data: {payload}\n".encode()])) == [f"data: {payload}"]


def test_utf8_split_inside_a_character_and_bom_dropped() -> None:
    raw = "\ufeffdata: héllo\n\n".encode()
    chunks = [raw[i : i + 1] for i in range(len(raw))]
    assert list(iter_events(iter_lines(chunks))) == [SSEEvent(event="message", data="héllo")]
