"""`llmctl bench` against the real gateway and the raw llama-server behind it (bundled Gemma 3 270M), then
`llmctl plan --profile` on what it measured. Few, short requests: the numbers are checked for consistency
(with each other, with `usage`, with the gateway's own counters), never for speed."""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from fixtures_gateway import MODEL, RunningGateway, metric_value

pytestmark = pytest.mark.slow

ISL, OSL, REQUESTS = 48, 8, 3
PCTS = (50, 90, 95, 99)
SVG = "{http://www.w3.org/2000/svg}"


def _tokens(gw: RunningGateway) -> tuple[float, float]:
    text = gw.metrics()
    return (metric_value(text, "llmctl_prompt_tokens_total", model=MODEL),
            metric_value(text, "llmctl_generated_tokens_total", model=MODEL))


@pytest.fixture(scope="module")
def bench_run(gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    before = _tokens(gateway)
    r = gateway.cli("bench", gateway.url, "-m", MODEL, "--isl", str(ISL), "--osl", str(OSL), "-c", "1,2",
                    "-n", str(REQUESTS), "--goodput", "ttft:60000", "tpot:60000", "--tp", "1", "--gpu", "h100",
                    "-o", str(out / "r.json"), "--plot", str(out / "r.svg"), timeout=600)
    assert r.returncode == 0, r.stderr
    return {"doc": json.loads((out / "r.json").read_text()), "svg": out / "r.svg", "json": out / "r.json",
            "stdout": r.stdout, "stderr": r.stderr, "before": before}


def test_result_document(bench_run: dict[str, Any]) -> None:
    doc = bench_run["doc"]
    assert doc["schema"] == "llmctl.bench" and doc["version"] == 1
    assert doc["endpoint"]["model"] == MODEL and doc["endpoint"]["path"] == "/v1/completions"
    assert doc["deployment"] == {"tp": 1, "pp": None, "gpus": 1, "gpu": "h100-80gb", "label": None}  # alias resolved
    assert doc["workload"]["tokenizer"] == "usage"  # the gateway has no /tokenize
    assert [r["concurrency"] for r in doc["runs"]] == [1, 2]
    assert "c=1" in bench_run["stdout"] and "c=2" in bench_run["stdout"]
    assert "concurrency 2: 3 ok, 0 failed" in bench_run["stderr"]  # progress lines off a TTY


def test_tokens_match_usage_and_the_gateway(gateway: RunningGateway, bench_run: dict[str, Any]) -> None:
    doc = bench_run["doc"]
    for run in doc["runs"]:
        assert run["completed"] == REQUESTS and run["failed"] == 0
        lines = run["records"]
        assert all(line["osl"] == OSL == line["expected_osl"] for line in lines)  # ignore_eos honoured
        assert all(abs(line["isl"] - ISL) <= max(3, ISL // 10) for line in lines)  # calibrated on usage
        assert run["total_output_tokens"] == sum(line["osl"] for line in lines)
        assert run["total_input_tokens"] == sum(line["isl"] for line in lines)
        assert all(line["chunks"] == line["osl"] for line in lines)  # llama-server streams one token a chunk
    sent_in = sum(r["total_input_tokens"] for r in doc["runs"]) + doc["probes"]["input_tokens"]
    sent_out = sum(r["total_output_tokens"] for r in doc["runs"]) + doc["probes"]["output_tokens"]
    before = bench_run["before"]
    deadline = time.monotonic() + 30  # the gateway books a stream just after [DONE] reaches the client
    while _tokens(gateway) != (before[0] + sent_in, before[1] + sent_out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _tokens(gateway) == (before[0] + sent_in, before[1] + sent_out)


def test_metrics_are_consistent(bench_run: dict[str, Any]) -> None:
    for run in bench_run["doc"]["runs"]:
        d = run["duration"]
        assert math.isclose(run["request_throughput"], run["completed"] / d)
        assert math.isclose(run["output_throughput"], run["total_output_tokens"] / d)
        assert math.isclose(run["total_token_throughput"], (run["total_input_tokens"] + run["total_output_tokens"]) / d)
        assert run["request_goodput"] <= run["request_throughput"]
        lines = run["records"]
        good = sum(1 for line in lines if line["ttft_ms"] <= 60000 and (line["tpot_ms"] or 0) <= 60000)
        assert math.isclose(run["request_goodput"], good / d)
        for name in ("ttft", "tpot", "itl", "e2el"):
            series = [run[f"p{p}_{name}_ms"] for p in PCTS]
            assert series == sorted(series), name
            assert run[f"median_{name}_ms"] == run[f"p50_{name}_ms"]
        ttfts = sorted(line["ttft_ms"] for line in lines)
        assert ttfts[0] <= run["mean_ttft_ms"] <= ttfts[-1]
        for line in lines:
            assert 0 < line["ttft_ms"] <= line["e2el_ms"]
            assert math.isclose(line["tpot_ms"], (line["e2el_ms"] - line["ttft_ms"]) / (line["osl"] - 1))
        assert run["p99_e2el_ms"] <= d * 1000 + 1e-6
        assert run["client"]["cpu_us_per_token"] > 0
    c1, c2 = bench_run["doc"]["runs"]
    assert c1["decode_batch"] == 1.0 and c1["max_concurrent_requests"] == 1
    assert 1.0 <= c2["decode_batch"] <= 2.0 and c2["max_concurrent_requests"] == 2


def test_profile_section(bench_run: dict[str, Any]) -> None:
    prof = bench_run["doc"]["profile"]
    c1 = bench_run["doc"]["runs"][0]
    assert [p["requests"] for p in prof["prefill"]] and sum(p["requests"] for p in prof["prefill"]) == REQUESTS
    for p in prof["prefill"]:
        assert math.isclose(p["tokens_per_s"], p["isl"] / (p["ttft_ms"] / 1000))
        assert p["tokens_per_s_per_gpu"] == p["tokens_per_s"]  # TP 1
    assert [d["concurrency"] for d in prof["decode"]] == [1, 2]
    assert prof["decode"][0]["step_ms"] == c1["median_itl_ms"]
    assert prof["decode"][0]["batch"] == c1["decode_batch"]


def test_plot_is_well_formed_svg(bench_run: dict[str, Any]) -> None:
    root = ET.parse(bench_run["svg"]).getroot()
    assert root.tag == SVG + "svg"
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 2 * 2 * 2  # 2 points x (median, p99) x (TTFT, TPOT)
    assert all(c.find(f"{SVG}title") is not None for c in circles)


def test_plan_uses_the_profile(gateway: RunningGateway, bench_run: dict[str, Any]) -> None:
    path = str(bench_run["json"])
    r = gateway.cli("plan", MODEL, "--isl", str(ISL), "--osl", str(OSL), "--profile", path)
    assert r.returncode == 0, r.stderr
    assert "(measured)" in r.stdout and "profile r.json" in r.stdout
    assert "TTFT of a request alone" in r.stdout and "median ITL measured at batch" in r.stdout
    r = gateway.cli("plan", MODEL, "--isl", str(ISL), "--osl", str(OSL), "--profile", path, "--format", "json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    decode = bench_run["doc"]["profile"]["decode"]
    role = plan["roles"][0]
    # plan JSON rounds seconds to 6 decimals: a fast step (10 ms) is then off by up to 5e-5 relative
    assert math.isclose(role["decode_idle"]["time"], decode[0]["step_ms"] / 1000, rel_tol=1e-9, abs_tol=1e-6)
    assert role["batch_at_capacity"] <= round(decode[-1]["batch"])  # never beyond the batch measured
    assert plan["measured"]["shapes"][0]["sources"] == ["r.json"]


def test_plan_refuses_a_profile_of_another_gpu_or_model(gateway: RunningGateway, bench_run: dict[str, Any],
                                                       tmp_path: Path) -> None:
    path = str(bench_run["json"])
    r = gateway.cli("plan", MODEL, "--gpu", "h200", "--profile", path)
    assert r.returncode == 4 and "measured on h100-80gb" in r.stderr and "Traceback" not in r.stderr
    r = gateway.cli("plan", "llama3.1:8b", "--profile", path)
    assert r.returncode == 4 and f"the profile measured {MODEL}" in r.stderr
    unlabeled = {**bench_run["doc"], "deployment": {"tp": None, "pp": None, "gpu": None, "label": None}}
    (tmp_path / "u.json").write_text(json.dumps(unlabeled))
    r = gateway.cli("plan", MODEL, "--profile", str(tmp_path / "u.json"))
    assert r.returncode == 4 and "does not say which GPU" in r.stderr
    r = gateway.cli("plan", MODEL, "--profile", str(tmp_path / "missing.json"))
    assert r.returncode == 3


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_raw_llama_server_at_request_rates(gateway: RunningGateway, gemma_engine: Any, tmp_path: Path) -> None:
    """A raw llama-server (llmctl's engine process, behind its own random API key) has /tokenize: prompts are
    random tokens of exactly the asked length. Open-loop points: Poisson arrivals at 8 req/s and all at once,
    at most 2 in flight."""
    out = tmp_path / "raw.json"
    r = gateway.cli("bench", gemma_engine.base_url + "/v1", "--isl", "40", "--range-ratio", "0.5", "--osl", "4",
                    "-r", "inf,8", "--max-concurrency", "2", "-n", "4", "--json", "-o", str(out),
                    env={"LLMCTL_API_KEY": gemma_engine.api_key})
    assert r.returncode == 0, r.stderr
    doc = strict_json(r.stdout)
    assert doc == strict_json(out.read_text())
    assert doc["workload"]["tokenizer"] == "endpoint" and doc["workload"]["burstiness"] == 1.0
    assert [(x["mode"], x["request_rate"], x["max_concurrency"]) for x in doc["runs"]] == [
        ("rate", 8.0, 2), ("rate", "inf", 2)]
    for run in doc["runs"]:
        assert run["completed"] == 4 and run["max_concurrent_requests"] <= 2
        assert run["client"]["dispatch_lag_p99_ms"] is not None
        lines = run["records"]
        assert all(line["isl"] == line["expected_isl"] for line in lines)
        assert all(20 <= line["expected_isl"] <= 60 for line in lines)
    assert [d["request_rate"] for d in doc["profile"]["decode"]] == [8.0, "inf"]
    assert doc["profile"]["prefill"] == []  # nothing ran alone


def test_bad_input_is_one_line(gateway: RunningGateway) -> None:
    for args, code, words in [
        (("bench", gateway.url, "-c", "0"), 4, "positive"),
        (("bench", gateway.url, "-c", "1", "--request-rate", "2"), 2, "not both"),
        (("bench", gateway.url, "--goodput", "ttfx:3"), 4, "KEY:MILLISECONDS"),
        (("bench", "ftp://x"), 4, "not an http(s) URL"),
        (("bench", gateway.url, "-m", "nosuch", "-n", "1", "-c", "1"), 3, "nosuch"),
        (("bench", "http://127.0.0.1:9", "-m", MODEL), 8, "cannot reach"),
    ]:
        r = gateway.cli(*args)
        assert r.returncode == code, (args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 or r.stderr.count("llmctl: error:") == 1, r.stderr


def test_api_key_from_the_environment(gateway_factory: Any) -> None:
    gw = gateway_factory("--parallel", "1", api_key="sekret")
    args = ("bench", gw.url, "-m", MODEL, "--isl", "16", "--osl", "2", "-c", "1", "-n", "1")
    r = gw.cli(*args)
    assert r.returncode == 7 and "HTTP 401" in r.stderr, r.stderr
    r = gw.cli(*args, "--json", env={"LLMCTL_API_KEY": "sekret"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["runs"][0]["completed"] == 1 and "sekret" not in r.stdout


def test_chat_api(gateway: RunningGateway) -> None:
    """/v1/chat/completions: the prompt is sized through the chat template the gateway renders. gemma3:270m is a
    base model, so the gateway renders a transcript and stops at the next turn's marker: OSL is at most asked."""
    r = gateway.cli("bench", gateway.url, "-m", MODEL, "--api", "chat", "--isl", "24", "--osl", "6", "-c", "1",
                    "-n", "2", "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = strict_json(r.stdout)
    assert doc["endpoint"]["path"] == "/v1/chat/completions"
    run = doc["runs"][0]
    assert run["completed"] >= 1 and run["completed"] + run["failed"] == 2
    assert all(e == "the stream carried no text" for e in run["errors"])  # everything held back for a stop string
    for line in (x for x in run["records"] if "error" not in x):
        # usage counts every token; text that might begin a stop string is held back, so chunks <= OSL
        assert 1 <= line["osl"] <= 6 and 1 <= line["chunks"] <= line["osl"]
        assert abs(line["isl"] - 24) <= 3
