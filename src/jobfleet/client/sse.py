"""A small Server-Sent Events reader (the WHATWG "event stream" format).

`iter_lines` turns a byte stream into lines (UTF-8; CR, LF and CRLF all end a line, nothing else
does), and `SSEParser.feed` turns lines into events: `id:`, `event:`, `data:` and `retry:` fields,
`:` comments ignored, a blank line dispatches. An event without data is not dispatched, and an
event cut off by the end of the stream is dropped, as browsers do.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEParser:
    """Feed it lines without their line ending; it returns an event on the blank line ending one."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None  # reconnection delay the server asked for, in ms
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_event_id)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a UTF-8 byte stream, without a leading BOM or an unterminated last line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    buf = ""
    for chunk in chunks:
        buf += decoder.decode(chunk)
        start = 0
        for m in _EOL.finditer(buf):
            if m.group() == "\r" and m.end() == len(buf):
                break  # maybe the first half of a CRLF split across chunks
            yield buf[start : m.start()]
            start = m.end()
        buf = buf[start:]
    buf += decoder.decode(b"", final=True)
    start = 0
    for m in _EOL.finditer(buf):
        yield buf[start : m.start()]
        start = m.end()


def iter_events(lines: Iterable[str], parser: SSEParser | None = None) -> Iterator[SSEEvent]:
    parser = parser or SSEParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
