"""The relay's byte-level reading of engine streams, on real llama-server responses (tests/data/llama-server).

`sse.piece` must read every event exactly as `parse_piece(json.loads(...))` does, taking its no-JSON path only for
plain token events; `UpstreamStream` must give the same events whatever sizes the engine's writes arrive in.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.server import sse
from llmctl.server.proxy import UpstreamError, open_stream
from llmctl.server.sse import parse_piece, piece, token_text

DATA = Path(__file__).parent / "data" / "llama-server"
CAPTURES = sorted(p.name for p in DATA.glob("*.http"))


def _body(raw: bytes) -> bytes:
    """The de-chunked body of a captured response (written independently of the code under test)."""
    _, _, rest = raw.partition(b"\r\n\r\n")
    out = b""
    while True:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2:]


def _payloads(raw: bytes) -> list[bytes]:
    return [e[len(b"data: "):] for e in _body(raw).split(b"\n\n") if e.startswith(b"data: ")]


@pytest.mark.parametrize("name", CAPTURES)
def test_every_real_event_reads_as_json_reads_it(name: str) -> None:
    events = [p for p in _payloads((DATA / name).read_bytes()) if p != b"[DONE]"]
    fast = 0
    for payload in events:
        data = json.loads(payload)
        assert piece(payload) == parse_piece(data), payload
        plain_token = parse_piece(data).text and "usage" not in data and "timings" not in data and not (
            parse_piece(data).finish or data.get("stop"))
        if plain_token:
            assert token_text(payload.decode()) == parse_piece(data).text, payload
            fast += 1
        else:
            assert token_text(payload.decode()) is None, payload
    assert fast >= len(events) - 3  # all but the role, finish and usage events skip the JSON parse


CHAT = '{{"choices":[{{"finish_reason":null,"index":0,"delta":{{"content":{}}}}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk"}}'
TEXT = '{{"choices":[{{"text":{},"index":0,"logprobs":null,"finish_reason":null}}],"created":1,"model":"m","system_fingerprint":"b1","object":"text_completion","id":"chatcmpl-x"}}'
NATIVE = '{{"index":0,"content":{},"tokens":[1],"stop":false,"id_slot":-1,"tokens_predicted":1,"tokens_evaluated":5}}'


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1), st.booleans())
def test_token_text_of_any_text(text: str, ascii_only: bool) -> None:
    literal = json.dumps(text, ensure_ascii=ascii_only)
    for shape in (CHAT, TEXT, NATIVE):
        event = shape.format(literal)
        assert token_text(event) == text
        assert piece(event.encode()) == parse_piece(json.loads(event))


@pytest.mark.parametrize("event", [
    CHAT.format(json.dumps('"}}],"usage":{"x":1},"timings":{')),  # the closing shape, escaped inside the text
    TEXT.format(json.dumps('","index":0,"logprobs":null,"finish_reason":null}],')),
    NATIVE.format(json.dumps('","tokens":[1],"stop":true,')),
])
def test_text_that_looks_like_json_structure_is_still_text(event: str) -> None:
    assert token_text(event) == parse_piece(json.loads(event)).text
    assert piece(event.encode()) == parse_piece(json.loads(event))


@pytest.mark.parametrize("event", [
    '{"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk"}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"a"}}],"created":1,"model":"m","usage":{"prompt_tokens":3,"completion_tokens":1}}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"a"}}],"created":1,"model":"m","timings":{"prompt_n":3,"predicted_n":1,"predicted_ms":2.5}}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"reasoning_content":"hm"}}],"created":1,"model":"m"}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{"}}]}}],"created":1}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"a","reasoning_content":"b"}}],"created":1}',
    '{"index":0,"content":"","tokens":[],"id_slot":1,"stop":true,"model":"m","tokens_predicted":6,"tokens_evaluated":5,"stop_type":"limit","timings":{"prompt_ms":1.0,"predicted_ms":2.0}}',
    '{"index":0,"content":"x","tokens":[5],"stop":true,"stop_type":"eos","tokens_predicted":1,"tokens_evaluated":2}',
    '{"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"completion_tokens":6,"prompt_tokens":5}}',
    '{"choices":[{"text":"a","index":0,"logprobs":{"content":[]},"finish_reason":null}],"created":1}',
])
def test_other_events_are_parsed_whole(event: str) -> None:
    assert token_text(event) is None
    assert piece(event.encode()) == parse_piece(json.loads(event))


def test_an_event_that_is_not_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="not JSON"):
        piece(b'{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"a')
    with pytest.raises(UpstreamError, match="not a JSON object"):
        piece(b"[1, 2]")


def test_payloads_and_error_lines() -> None:
    assert sse.payloads(b"data: a\n\ndata:b\n\n: comment\ndata: c\n\n") == [b"a", b"b", b"c"]
    with pytest.raises(UpstreamError, match="slot unavailable") as err:
        sse.payloads(b'data: a\n\nerror: {"message":"slot unavailable"}\n\n')
    assert err.value.status == 500
    assert sse.split_complete(b"data: a", b"b\n\ndata: c") == (b"data: ab\n\n", b"data: c")
    assert sse.split_complete(b"", b"data: x") == (b"", b"data: x")


async def _replay(raw: bytes, seed: int) -> tuple[list[bytes], list[bytes]]:
    """Serve `raw` in random-sized writes; read it back through `open_stream` twice: reads() and batches()."""
    rng = random.Random(seed)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        pos = 0
        while pos < len(raw):
            step = rng.choice([1, 2, 7, 64, 500, 4096])
            writer.write(raw[pos:pos + step])
            pos += step
            await writer.drain()
            await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    async with server:
        reads = [r async for r in (await open_stream(url, {"stream": True})).reads()]
        events = [e async for b in (await open_stream(url, {"stream": True})).batches() for e in b]
    return reads, events


@pytest.mark.parametrize("name", CAPTURES)
def test_upstream_stream_gives_the_same_events_whatever_the_write_sizes(name: str) -> None:
    raw = (DATA / name).read_bytes()
    for seed in range(4):
        reads, events = asyncio.run(_replay(raw, seed))
        assert b"".join(reads) == _body(raw)
        assert all(reads)
        assert events == _payloads(raw)


def test_stub_engine_events_have_llama_servers_shape() -> None:
    """bench/stub_engine.py stands in for llama-server in the relay benchmark: same keys, same order."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import stub_engine

    def keys(payload: bytes) -> list[str]:
        data = json.loads(payload)
        return list(data) + [f"choices.{k}" for k in (data.get("choices") or [{}])[0]]

    for name, endpoint, body in [
        ("chat-stream-usage.http", "/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": True}}),
        ("chat-stream.http", "/v1/chat/completions", {"stream": True}),
        ("completions-stream.http", "/v1/completions", {"stream": True}),
    ]:
        answer = stub_engine.Answer(endpoint, {**body, "max_tokens": 3}, "m")
        stub = b"".join(answer.token_chunk(i) for i in range(3)) + answer.tail_chunks()
        real = _payloads((DATA / name).read_bytes())
        mine = _payloads(b"HTTP/1.1 200 OK\r\n\r\n" + stub)
        assert [keys(p) for p in mine[:2]] == [keys(p) for p in real[:2]]
        assert [keys(p) for p in mine[-3:] if p != b"[DONE]"] == [keys(p) for p in real[-3:] if p != b"[DONE]"]
        assert mine[-1] == real[-1] == b"[DONE]"
    native = stub_engine.Answer("/completion", {"stream": True, "n_predict": 2}, "m")
    real = _payloads((DATA / "native-stream.http").read_bytes())
    assert list(json.loads(_payloads(b"HTTP/1.1 200 OK\r\n\r\n" + native.token_chunk(0) + b"0\r\n\r\n")[0])) == list(
        json.loads(real[0]))


def test_clock_stamps_like_now_rfc3339() -> None:
    from datetime import datetime

    from llmctl.server.translate import Clock, now_rfc3339

    clock = Clock()
    for _ in range(3):
        before, stamp, after = now_rfc3339(), clock.now(), now_rfc3339()
        assert len(stamp) == len(before) and stamp.endswith("Z") and before <= stamp <= after
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None


async def _keepalive_server(raw: bytes, *, close_idle: bool = False):
    """Answers every request on a connection with the captured `raw` (kept alive unless it says
    `Connection: close`); counts connections. `close_idle`: closes each connection after one answer without
    saying so, as an engine does to an idle kept-alive connection."""
    seen = {"connections": 0, "requests": 0, "open": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        seen["open"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                seen["requests"] += 1
                writer.write(raw)
                await writer.drain()
                if close_idle or b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        seen["open"] -= 1

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions", seen


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _kept_alive(raw: bytes) -> bytes:
    """A capture as llama-server answers a request that did not ask `Connection: close`."""
    return raw.replace(b"Connection: close\r\n", b"")


def _pooled_requests(raw: bytes, n: int, *, close_idle: bool = False, read: bool = True) -> tuple[list[bytes], dict, int]:
    from llmctl.server.enginepool import EnginePool

    async def main() -> tuple[list[bytes], dict, int]:
        server, url, seen = await _keepalive_server(raw, close_idle=close_idle)
        pool = EnginePool(max_idle=4)
        bodies = []
        async with server:
            for _ in range(n):
                stream = await open_stream(url, {"stream": True}, pool=pool)
                if read:
                    bodies.append(b"".join([r async for r in stream.reads()]))
                await stream.aclose()
                if close_idle:  # the server's close has reached the pooled socket
                    await _until(lambda: stream._sock.closed)
            pool.close()
            await _until(lambda: seen["open"] == 0)
        del seen["open"]
        return bodies, seen, pool.reused

    return asyncio.run(main())


def test_a_stream_read_to_its_end_leaves_its_connection_to_the_next() -> None:
    raw = _kept_alive((DATA / CAPTURES[0]).read_bytes())
    bodies, seen, reused = _pooled_requests(raw, 3)
    assert bodies == [_body(raw)] * 3
    assert seen == {"connections": 1, "requests": 3} and reused == 2


def test_a_stream_not_read_to_its_end_closes_its_connection() -> None:
    """A client that left mid-answer: the engine must see the socket close (it frees the slot), never reuse."""
    raw = _kept_alive((DATA / CAPTURES[0]).read_bytes())
    _, seen, reused = _pooled_requests(raw, 3, read=False)
    assert seen["connections"] == 3 and reused == 0


def test_a_connection_the_engine_closed_is_not_reused() -> None:
    raw = _kept_alive((DATA / CAPTURES[0]).read_bytes())
    bodies, seen, _ = _pooled_requests(raw, 3, close_idle=True)
    assert bodies == [_body(raw)] * 3 and seen == {"connections": 3, "requests": 3}


def test_connection_close_from_the_engine_is_honoured() -> None:
    raw = (DATA / CAPTURES[0]).read_bytes()
    assert b"Connection: close\r\n" in raw
    bodies, seen, reused = _pooled_requests(raw, 2)
    assert bodies == [_body(raw)] * 2 and reused == 0


def test_a_request_on_a_connection_closed_under_it_goes_again_on_a_fresh_one() -> None:
    """The engine closes a kept-alive connection just as the gateway sends on it: sent once more, not an error."""
    from llmctl.server.enginepool import EnginePool

    raw = _kept_alive((DATA / CAPTURES[0]).read_bytes())

    async def main() -> tuple[list[bytes], dict, int]:
        seen = {"connections": 0, "open": 0}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["connections"] += 1
            seen["open"] += 1
            try:
                for answered in (True, False):  # the second request on a connection: dropped unanswered
                    head = await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]))
                    if answered:
                        writer.write(raw)
                        await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()
            seen["open"] -= 1

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
        pool = EnginePool(max_idle=4)
        bodies = []
        async with server:
            for _ in range(2):
                stream = await open_stream(url, {"stream": True}, pool=pool)
                bodies.append(await stream.read_all())
                await stream.aclose()
            pool.close()
            await _until(lambda: seen["open"] == 0)
        return bodies, seen, pool.reused

    bodies, seen, reused = asyncio.run(main())
    assert bodies == [_body(raw)] * 2
    assert seen["connections"] == 2 and reused == 1  # the second went out on the kept one, then on a fresh one


def test_idle_connections_are_closed_after_a_while() -> None:
    """A kept connection holds one of llama-server's HTTP threads: it is closed once idle for IDLE_SECONDS."""
    from llmctl.server import enginepool

    raw = _kept_alive((DATA / CAPTURES[0]).read_bytes())

    async def main() -> int:
        server, url, seen = await _keepalive_server(raw)
        pool = enginepool.EnginePool(max_idle=4)
        async with server:
            stream = await open_stream(url, {"stream": True}, pool=pool)
            await stream.read_all()
            await stream.aclose()
            assert seen["open"] == 1
            await _until(lambda: seen["open"] == 0, timeout=enginepool.IDLE_SECONDS * 5)
            assert pool.take(url.split("/")[2]) is None
        return seen["connections"]

    assert asyncio.run(main()) == 1
