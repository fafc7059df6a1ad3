"""The load generator's parts: HTTP/1.1 and SSE framing (against a real local socket server that frames its
answers the awkward ways servers may), the metric arithmetic (against numpy's), workloads and the plot."""

from __future__ import annotations

import asyncio
import json
import math
import random
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.errors import InvalidInput, UsageError
from llmctl.loadgen import metrics as M
from llmctl.loadgen.client import Record, chunk_limit, request_body, stream
from llmctl.loadgen.http import ChunkedDecoder, Pool, ProtocolError, parse_endpoint
from llmctl.loadgen.sse import EventTooLarge, SseParser
from llmctl.loadgen.svg import CurvePoint, nice_ticks, render
from llmctl.loadgen.workload import Lengths, arrival_offsets, parse_levels


# -- framing ------------------------------------------------------------------------------------------------
def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_chunked_decoder_any_split(pieces: list[bytes], cuts: list[int]) -> None:
    dec = ChunkedDecoder()
    out = b"".join(dec.feed(part) for part in splits(chunked(pieces), cuts))
    assert out == b"".join(pieces) and dec.done


def test_chunked_decoder_refuses_garbage() -> None:
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"zz\r\nabc")
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"3\r\nabcXX")
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"1" * 2000)


EVENTS = [b'{"a":1}', b'{"b":"x\\ny"}', b"[DONE]"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_sse_parser_any_split(cuts: list[int], crlf: bool) -> None:
    nl = b"\r\n" if crlf else b"\n"
    body = (b": keep-alive comment" + nl + nl + b"data: " + EVENTS[0] + nl + nl + b"data:" + EVENTS[1] + nl
            + b"event: ignored" + nl + nl + b"data: " + EVENTS[2] + nl + nl)
    parser = SseParser()
    got = [p for part in splits(body, cuts) for p in parser.feed(part)]
    assert got == EVENTS


def test_sse_multiline_data_and_limit() -> None:
    assert SseParser().feed(b"data: a\ndata: b\n\n") == [b"a\nb"]
    with pytest.raises(EventTooLarge):
        SseParser(max_event_bytes=100).feed(b"data: " + b"x" * 200)


def test_endpoint_urls() -> None:
    ep = parse_endpoint("http://127.0.0.1:8000/v1/", api_key="k")
    assert (ep.host, ep.port, ep.prefix, ep.base_url) == ("127.0.0.1", 8000, "", "http://127.0.0.1:8000")
    assert ep.headers == (("Authorization", "Bearer k"),)
    assert parse_endpoint("https://h/proxy/v1").prefix == "/proxy" and parse_endpoint("https://h").port == 443
    assert parse_endpoint("http://[::1]:9/").base_url == "http://[::1]:9"
    for bad in ("ftp://h", "h:80", "http://u:p@h", "http://h?q=1", "http://h:99999"):
        with pytest.raises(InvalidInput):
            parse_endpoint(bad)
    with pytest.raises(InvalidInput):
        parse_endpoint("http://h", api_key="a\r\nX-Evil: 1")


# -- the client against a real socket server ----------------------------------------------------------------
def sse_body(tokens: int, *, usage: bool = True) -> bytes:
    events = [json.dumps({"choices": [{"text": f" t{i}", "finish_reason": None}]}).encode() for i in range(tokens)]
    final = {"choices": [{"text": "", "finish_reason": "length"}]}
    if usage:
        final["usage"] = {"prompt_tokens": 7, "completion_tokens": tokens}
    events.append(json.dumps(final).encode())
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


Handler = Callable[[str, asyncio.StreamWriter], Awaitable[bool]]  # returns False to close the connection


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length")), 0)
                await reader.readexactly(length)
                if not await handler(lines[0].split()[1], writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def stream_split(writer: asyncio.StreamWriter, body: bytes) -> None:
    """Chunked framing cut through the middle of events, each chunk flushed on its own."""
    for piece in splits(body, list(range(5, len(body), 37))):
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(0)
    writer.write(b"0\r\n\r\n")


async def handler(path: str, w: asyncio.StreamWriter) -> bool:
    if path == "/v1/completions":
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await stream_split(w, sse_body(5))
        return True
    if path == "/close/v1/completions":  # no length, body ends with the connection
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + sse_body(3, usage=False))
        return False
    if path == "/drop/v1/completions":  # answers, then drops the keep-alive connection while idle
        body = sse_body(2)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return False
    if path == "/flood/v1/completions":  # far more chunks than the 5 tokens asked for
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + sse_body(500))
        return False
    if path == "/404/v1/completions":
        body = b'{"error":{"message":"model \'x\' not found","code":404}}'
        w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True
    if path == "/big/v1/completions":
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: " + b"x" * 300_000)
        return False
    if path == "/deep/v1/completions":  # an event nested past the JSON parser's stack (within the event limit)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: " + b"[" * 40_000 + b"]" * 40_000
                + b"\n\n")
        return False
    if path == "/choices/v1/completions":  # choices as an object, a delta as a string
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"choices\": {\"a\": 1}}\n\n"
                + b"data: {\"choices\": [{\"delta\": \"x\"}]}\n\n"
                + b"data: {\"choices\": [{\"text\": \"x\"}]}\n\ndata: [DONE]\n\n")
        return False
    if path == "/deeperror/v1/completions":
        body = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB an error body may hold
        w.write(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True
    if path == "/headers/v1/completions":
        w.write(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 100_000 + b"\r\n\r\n")
        return False
    w.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
    return True


def run_client(prefix: str, times: int = 1) -> list[Record]:
    async def main() -> list[Record]:
        server, port = await serve(handler)
        pool = Pool(parse_endpoint(f"http://127.0.0.1:{port}{prefix}"))
        out = []
        for _ in range(times):
            body = request_body("completions", "m", "hi", 5, True, None)
            out.append(await stream(pool, "/v1/completions", body, Record(), timeout=10, max_event_bytes=100_000,
                                    max_chunks=chunk_limit(5)))
        await pool.close()
        server.close()
        return out

    return asyncio.run(main())


def test_stream_times_every_text_chunk_and_reads_usage() -> None:
    recs = run_client("", times=3)  # three requests on one keep-alive connection
    for rec in recs:
        assert rec.ok, rec.error
        assert (rec.isl, rec.osl, len(rec.chunk_times)) == (7, 5, 5)
        assert rec.start < rec.first == rec.chunk_times[0] <= rec.chunk_times[-1] <= rec.last  # type: ignore[operator]
        assert len(rec.itl) == 4 and rec.tpot == pytest.approx((rec.e2e - rec.ttft) / 4)


def test_stream_framings_and_failures() -> None:
    rec = run_client("/close")[0]
    assert rec.ok and rec.osl == 3 and rec.isl is None  # no usage: OSL counted from text chunks
    assert all(r.ok and r.osl == 2 for r in run_client("/drop", times=3))  # retried on a fresh connection
    rec = run_client("/404")[0]
    assert rec.status == 404 and rec.error == "HTTP 404: model 'x' not found"
    assert "over 100000 bytes" in (run_client("/big")[0].error or "")
    assert "headers over" in (run_client("/headers")[0].error or "")
    assert run_client("/flood")[0].error == f"the stream sent over {chunk_limit(5)} text chunks"
    # a hostile endpoint fails its request, never the benchmark (they were RecursionError and KeyError)
    assert "nests too deeply" in (run_client("/deep")[0].error or "")
    rec = run_client("/choices")[0]
    assert rec.ok and rec.osl == 1
    assert (run_client("/deeperror")[0].error or "").startswith("HTTP 400: [[[")


# -- metrics ------------------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=60))
def test_stats_match_numpy(values: list[float]) -> None:
    got = M.stats_ms(values, "x", (50, 90, 95, 99, 99.9))
    assert got["mean_x_ms"] == pytest.approx(np.mean(values) * 1000, rel=1e-9, abs=1e-9)
    assert got["std_x_ms"] == pytest.approx(np.std(values) * 1000, rel=1e-6, abs=1e-6)
    assert got["median_x_ms"] == pytest.approx(np.median(values) * 1000, rel=1e-9, abs=1e-9)
    for p in (50, 90, 95, 99, 99.9):
        key = f"p{M.pword(p)}_x_ms"
        assert got[key] == pytest.approx(np.percentile(values, p) * 1000, rel=1e-9, abs=1e-9)
    assert M.stats_ms([], "x", (99,)) == {"mean_x_ms": None, "median_x_ms": None, "std_x_ms": None, "p99_x_ms": None}


def rec(start: float, chunks: list[float], osl: int | None = None, isl: int = 10) -> Record:
    return Record(start=start, first=chunks[0], last=chunks[-1], chunk_times=chunks, isl=isl,
                  osl=len(chunks) if osl is None else osl)


def test_summary_and_goodput() -> None:
    a = rec(0.0, [0.1, 0.2, 0.3])  # TTFT 100 ms, TPOT 100 ms
    b = rec(0.0, [0.5, 0.55, 0.6])  # TTFT 500 ms, TPOT 50 ms
    c = rec(0.0, [0.2])  # one token: TPOT counts as 0 for goodput, and is no TPOT sample
    bad = Record(start=0.0, error="HTTP 500: x")
    s = M.summarize([a, b, c, bad], 2.0, M.parse_goodput(["ttft:200", "tpot:80"]))
    assert (s["completed"], s["failed"], s["total_output_tokens"], s["total_input_tokens"]) == (3, 1, 7, 30)
    assert s["request_goodput"] == 0.5  # only c is within both
    assert s["request_throughput"] == 1.5 and s["output_throughput"] == 3.5
    assert s["mean_tpot_ms"] == pytest.approx(75.0) and s["median_ttft_ms"] == pytest.approx(200.0)
    assert M.summarize([a], 1.0, M.Slo())["request_goodput"] is None
    assert M.parse_goodput(["ttft:500,tpot:50", "e2el:9"]) == M.Slo(0.5, 0.05, 0.009)
    for bad_pair in ("x:1", "ttft:-1", "ttft:inf"):  # parses, but not allowed
        with pytest.raises(InvalidInput):
            M.parse_goodput([bad_pair])
    for bad_pair in ("ttft", "ttft:abc"):  # does not parse: a usage error, as typer's own number options
        with pytest.raises(UsageError):
            M.parse_goodput([bad_pair])


def test_decode_batch_is_the_batch_each_token_saw() -> None:
    alone = rec(0.0, [1.0, 2.0, 3.0])
    assert M.decode_batch([alone]) == 1.0
    # two overlapping decodes: b's tokens at 2.5 and 3.5 see a (until 3.0) then only b
    a, b = rec(0.0, [1.0, 2.0, 3.0]), rec(0.0, [1.5, 2.5, 3.5])
    assert M.decode_batch([a, b]) == pytest.approx((2 + 2 + 2 + 1) / 4)
    assert M.peak_concurrency([a, b]) == 2


# -- workload and plot --------------------------------------------------------------------------------------
def test_lengths_and_arrivals() -> None:
    rng = random.Random(1)
    draws = Lengths(100, 10, 0.5).draw(500, rng)
    assert min(i for i, _ in draws) >= 50 and max(i for i, _ in draws) <= 150
    assert min(o for _, o in draws) >= 5 and max(o for _, o in draws) <= 15
    assert Lengths(100, 1, 0.9).bounds(1) == (1, 2)  # OSL never below 1
    offsets = arrival_offsets(200, 4.0, 1.0, random.Random(2))
    assert offsets == sorted(offsets) and offsets[-1] == pytest.approx(50.0)  # scaled to N / rate
    assert arrival_offsets(200, 4.0, 1.0, random.Random(2)) == offsets  # same seed, same arrivals
    steady = arrival_offsets(200, 4.0, 50.0, random.Random(2))
    gaps = np.diff(steady)
    assert np.std(gaps) < np.std(np.diff(offsets))  # burstiness > 1 is steadier than Poisson
    assert arrival_offsets(3, math.inf, 1.0, random.Random(0)) == [0.0, 0.0, 0.0]
    assert parse_levels("16,1,4,4", "c") == [1, 4, 16] and parse_levels("1,inf", "r", allow_inf=True)[-1] == math.inf
    for bad in ("0", "-1", "inf"):
        with pytest.raises(InvalidInput):
            parse_levels(bad, "c")
    for bad in ("x", "", "1,,two"):
        with pytest.raises(UsageError):
            parse_levels(bad, "c")


def test_plot_is_svg_with_every_point() -> None:
    for hi in (0.004, 1.0, 17.45, 1271.0, 98_000.0):
        ticks = nice_ticks(0.0, hi)
        assert ticks[0] == 0.0 and ticks[-1] >= hi and len(ticks) <= 12
    pts = [CurvePoint("c=1", 10.0, (5.0, 9.0), (2.0, 3.0)), CurvePoint("c=<&>", 30.0, (8.0, None), (None, None))]
    doc = render('model "<x>" & co', pts, upper="p95")
    root = ET.fromstring(doc.encode())
    circles = root.findall(".//{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 5  # None values are not drawn
    assert 'model "&lt;x&gt;" &amp; co' in doc and "p95" in doc


def test_prompt_budget_is_checked_before_anything_is_sent(tmp_path):
    """Every prompt is prepared before the first request: a typo (--isl 1e8, -n 1e8) is refused up front (exit 4)
    instead of filling memory. Port 9 (discard) would fail the connection, so an InvalidInput proves no request."""
    from llmctl.api.bench import BenchSpec, bench
    from llmctl.settings import Settings

    settings = Settings.from_env({"LLMCTL_HOME": str(tmp_path), "LLMCTL_BENCH_MAX_PROMPT_TOKENS": "100000"})
    assert Settings.from_env({}).bench_max_prompt_tokens == 1 << 25
    url = "http://127.0.0.1:9"
    for spec, total in [
        (BenchSpec(url, lengths=Lengths(100_000_000, 4), concurrency=(1,), requests=1), "100,000,000"),
        (BenchSpec(url, lengths=Lengths(16, 4), concurrency=(1,), requests=100_000_000), "1,600,000,000"),
        # the longest prompt of each point (1,500) x its default requests (16, 16, 64)
        (BenchSpec(url, lengths=Lengths(1000, 4, 0.5), concurrency=(1, 4, 16)), "144,000"),
        (BenchSpec(url, lengths=Lengths(10, 4), concurrency=(1,), requests=1, prefill_isl=(60_000,),
                   prefill_requests=2), "120,010"),
    ]:
        with pytest.raises(InvalidInput, match="LLMCTL_BENCH_MAX_PROMPT_TOKENS") as exc:
            bench(settings, spec)
        assert f"up to {total} tokens" in str(exc.value)
