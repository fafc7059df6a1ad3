"""Server-sent events: body bytes in, `data:` payloads out (the WHATWG event-stream format, minus `id`/`retry`,
which no OpenAI-compatible server uses for completions)."""

from __future__ import annotations

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


class EventTooLarge(Exception):
    """An event grew past the limit without ending: a broken or hostile server."""


class SseParser:
    """Feed body pieces; get the complete events' data payloads (multi-line data joined with `\\n`)."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.buf = b""
        self.max = max_event_bytes

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf + data
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # maybe the first half of a CRLF split across reads
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, rest = buf.split(b"\n\n")
        self.buf = rest + held
        if len(self.buf) > self.max:
            raise EventTooLarge(f"a server-sent event over {self.max} bytes")
        out = []
        for event in events:
            if event.startswith(b"data:") and b"\n" not in event:  # the common case: one data line
                out.append(event[6:] if event[5:6] == b" " else event[5:])
                continue
            lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                out.append(b"\n".join(ln[6:] if ln[5:6] == b" " else ln[5:] for ln in lines))
        return out
