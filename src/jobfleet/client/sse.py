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
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
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


class LineSplitter:
    """Incremental UTF-8 decoding and line splitting, shared by the sync and async readers."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._buf = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += self._decoder.decode(chunk)
        lines, start = [], 0
        for m in _EOL.finditer(self._buf):
            if m.group() == "\r" and m.end() == len(self._buf):
                break  # maybe the first half of a CRLF split across chunks
            lines.append(self._buf[start : m.start()])
            start = m.end()
        self._buf = self._buf[start:]
        return lines

    def close(self) -> list[str]:
        """The complete lines left; an unterminated last line is dropped."""
        buf = self._buf + self._decoder.decode(b"", final=True)
        lines, start = [], 0
        for m in _EOL.finditer(buf):
            lines.append(buf[start : m.start()])
            start = m.end()
        return lines


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a UTF-8 byte stream, without a leading BOM or an unterminated last line."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()


async def aiter_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """`iter_lines` for an async byte stream."""
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.close():
        yield line


def iter_events(lines: Iterable[str], parser: SSEParser | None = None) -> Iterator[SSEEvent]:
    parser = parser or SSEParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
