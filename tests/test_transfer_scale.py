"""Many-blob models and big stores, with real parts: a split GGUF pushed and pulled with its shards in
parallel, real `llmctl pull`/`push` processes killed with SIGKILL mid-transfer and run again, and a store
of ~50 models sharing blobs. What crossed the wire is read from a counting proxy in front of the real
docker-registry (it forwards every request; it is not a mock of the registry). No timings are asserted:
the sizes are small, and the proxy's rate limit only widens the window in which the kill lands.

The GiB-sized versions of these are `bench/big_models.py` and `bench/store_scale.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable, Iterator

import pytest

from fixtures_registry import LocalServer, RegistryServer
from llmctl.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gen_gguf import generate  # noqa: E402
from store_scale import brute_force_df, populate  # noqa: E402

BLOB_GET = "/blobs/sha256:"
UPLOAD = "/blobs/uploads/"


# -- a counting proxy -------------------------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    range: str | None
    status: int = 0

    @property
    def digest(self) -> str | None:
        """The blob a GET fetched or a PUT committed (`?digest=`), else None."""
        if self.method == "GET" and BLOB_GET in self.path:
            return "sha256:" + self.path.split(BLOB_GET, 1)[1].split("?", 1)[0]
        if self.method == "PUT" and "digest=sha256%3A" in self.path:
            return "sha256:" + self.path.split("digest=sha256%3A", 1)[1].split("&", 1)[0]
        return None


class CountingProxy(LocalServer):
    """Forwards everything to the registry and records each request (method, path, Range, status) when it
    starts. Blob bodies (GET responses, PUT/PATCH uploads) can be rate-limited (`rate`, bytes/s per body),
    and with `gate=N` each blob transfer waits, up to 60 s, until N of them are in flight together: that
    proves transfers run in parallel without timing anything (`gate_opened`)."""

    def __init__(self, upstream: RegistryServer, *, rate: float | None = None, gate: int = 0) -> None:
        self.upstream, self.rate, self.gate = upstream, rate, gate
        self.seen: list[Seen] = []
        self.in_flight = self.max_in_flight = 0
        self.gate_opened = False
        self._cond = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                owner._forward(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.serve(Handler)

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]

    # -- blob transfers in flight ------------------------------------------------------------------
    def _enter(self) -> None:
        with self._cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.gate and self.in_flight >= self.gate:
                self.gate_opened = True
            self._cond.notify_all()
            if self.gate:
                self._cond.wait_for(lambda: self.gate_opened, timeout=60)

    def _leave(self) -> None:
        with self._cond:
            self.in_flight -= 1

    def _pace(self, started: float, sent: int) -> None:
        rate = self.rate
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # a rate limit, not synchronisation

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        seen = Seen(h.command, h.path, h.headers.get("Range"))
        self.seen.append(seen)
        length = int(h.headers.get("Content-Length") or 0)
        transfer = (h.command == "GET" and BLOB_GET in h.path) or (h.command in ("PUT", "PATCH") and length > 0
                                                                    and UPLOAD in h.path)
        if transfer:
            self._enter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=60)
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                    conn.putheader(k, v)
            conn.endheaders()
            started, left = time.monotonic(), length
            while left > 0:
                chunk = h.rfile.read(min(left, 64 * 1024))
                if not chunk:
                    break
                conn.send(chunk)
                left -= len(chunk)
                self._pace(started, length - left)
            resp = conn.getresponse()
            seen.status = resp.status
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                    h.send_header(k, v)
            h.end_headers()
            if h.command == "HEAD":
                conn.close()
                return
            started, sent = time.monotonic(), 0
            while chunk := resp.read(64 * 1024):
                h.wfile.write(chunk)
                sent += len(chunk)
                if transfer:
                    self._pace(started, sent)
            conn.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed
        finally:
            if transfer:
                self._leave()


@pytest.fixture()
def proxy(registry: RegistryServer) -> Iterator[Callable[..., CountingProxy]]:
    made: list[CountingProxy] = []

    def make(**kwargs: object) -> CountingProxy:
        made.append(CountingProxy(registry, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for p in made:
        p.stop()


# -- helpers ----------------------------------------------------------------------------------------------
def llmctl_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    env.pop("LLMCTL_OFFLINE", None)
    return env


def run_llmctl(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmctl", *args], env=llmctl_env(home), capture_output=True,
                          text=True, timeout=300)


def start_llmctl(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmctl", *args], env=llmctl_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen | None = None,
             timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"llmctl exited ({proc.returncode}) before {what}: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def shard_model(tmp_path: Path, home: Path, name: str, shards: int, size_mib: int) -> dict[str, int]:
    """A split GGUF packaged as `name`; returns {digest: size} of every blob of the model."""
    files = generate(tmp_path / "gen" / "shardy", size_mib, shards)
    r = run_llmctl(home, "package", "-q", "--gguf", str(files[0]), name)
    assert r.returncode == 0, r.stderr
    manifest = json.loads(run_llmctl(home, "inspect", name).stdout)["manifest"]
    assert len(manifest["layers"]) == shards
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


def completed(home: Path, digests: dict[str, int]) -> set[str]:
    return {d for d in digests if (home / "store/blobs/sha256" / d[7:]).exists()}


def partials(home: Path) -> dict[str, int]:
    out = {}
    for p in (home / "store/ingest").glob("*.partial"):
        try:
            out["sha256:" + p.name.split(".")[0]] = p.stat().st_size
        except FileNotFoundError:
            pass
    return out


# -- tests ------------------------------------------------------------------------------------------------
def test_shards_push_and_pull_in_parallel_each_verified(registry: RegistryServer, proxy, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    digests = shard_model(tmp_path, src, "shardy:1", shards=8, size_mib=4)
    gated = proxy(gate=3)
    name = f"{gated.host}/team/shardy:8"
    assert run_llmctl(src, "tag", "shardy:1", name).returncode == 0
    r = run_llmctl(src, "push", "-q", "--json", name)
    assert r.returncode == 0, r.stderr
    assert gated.gate_opened and gated.max_in_flight == 3  # three uploads at once (-j 3), never more
    assert json.loads(r.stdout)["uploaded_bytes"] == sum(digests.values())

    gated.gate, gated.gate_opened, gated.max_in_flight = 4, False, 0
    r = run_llmctl(dst, "pull", "-q", "--json", "-j", "4", name)
    assert r.returncode == 0, r.stderr
    assert gated.gate_opened and gated.max_in_flight == 4
    pulled = json.loads(r.stdout)
    assert pulled["blobs"] == 9 and pulled["downloaded_bytes"] == sum(digests.values())
    assert completed(dst, digests) == set(digests) and partials(dst) == {}
    assert run_llmctl(dst, "verify").returncode == 0  # every blob re-hashed: all match their digests
    shown = json.loads(run_llmctl(dst, "show", "--json", name).stdout)
    assert len(shown["weights"]) == 8 and shown["architecture"] == "llama"


def test_pull_killed_mid_way_resumes_without_fetching_finished_blobs_again(
        registry: RegistryServer, proxy, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    # shards of 3 MiB: a pull writes what it read each 1 MiB (pull.READ_SIZE), so a partial file shows bytes
    # only once a blob is past its first MiB
    digests = shard_model(tmp_path, src, "shardy:1", shards=12, size_mib=36)
    plain = proxy()
    name = f"{plain.host}/team/shardy:12"
    assert run_llmctl(src, "tag", "shardy:1", name).returncode == 0
    assert run_llmctl(src, "push", "-q", name).returncode == 0

    plain.rate = 1024 * 1024  # per blob body (3 s for each 3 MiB shard): the kill lands while blobs are on the wire
    mark = plain.mark()
    proc = start_llmctl(dst, "pull", "-q", name)
    wait_for(lambda: len(completed(dst, digests)) >= 4 and any(partials(dst).values()),
             "four finished blobs and a partial one", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished, partial = completed(dst, digests), {d: n for d, n in partials(dst).items() if n}
    assert partial and len(finished) < len(digests)
    fetched_first = [s.digest for s in plain.since(mark) if s.digest]
    assert len(fetched_first) == len(set(fetched_first))

    plain.rate = None
    mark = plain.mark()
    r = run_llmctl(dst, "pull", "-q", "--json", name)
    assert r.returncode == 0, r.stderr
    second = [s for s in plain.since(mark) if s.digest]
    assert not [s for s in second if s.digest in finished]  # finished blobs are not fetched again
    for digest, have in partial.items():
        [resume] = [s for s in second if s.digest == digest] or [None]
        if have < digests[digest]:
            assert resume is not None and resume.range == f"bytes={have}-" and resume.status == 206
        else:
            assert resume is None  # every byte was there; only the rename was missing
    assert sorted(s.digest for s in second) == sorted(set(digests) - finished - {d for d, n in partial.items()
                                                                                  if n >= digests[d]})
    result = json.loads(r.stdout)
    assert result["resumed_bytes"] == sum(partial.values())
    assert result["downloaded_bytes"] == sum(digests[d] for d in digests if d not in finished) - sum(partial.values())
    assert completed(dst, digests) == set(digests) and partials(dst) == {}
    assert run_llmctl(dst, "verify").returncode == 0


def test_push_killed_mid_way_does_not_send_finished_blobs_again(
        registry: RegistryServer, proxy, tmp_path: Path) -> None:
    src = tmp_path / "src"
    digests = shard_model(tmp_path, src, "shardy:1", shards=12, size_mib=3)
    slow = proxy(rate=512 * 1024)
    name = f"{slow.host}/team/shardy:push"
    assert run_llmctl(src, "tag", "shardy:1", name).returncode == 0
    proc = start_llmctl(src, "push", "-q", name)
    wait_for(lambda: sum(registry.blob_exists(d) for d in digests) >= 4, "four blobs on the registry", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    present = {d for d in digests if registry.blob_exists(d)}
    assert len(present) < len(digests)

    slow.rate = None
    mark = slow.mark()
    r = run_llmctl(src, "push", "-q", "--json", name)
    assert r.returncode == 0, r.stderr
    second = slow.since(mark)
    committed = {s.digest for s in second if s.digest and s.status == 201}
    assert not committed & present  # what the registry had is never sent again (HEAD said so)
    heads = {s.path.rsplit("/", 1)[1] for s in second if s.method == "HEAD"}
    assert present <= heads
    result = json.loads(r.stdout)
    assert result["uploaded_bytes"] == sum(digests[d] for d in committed)
    assert all(registry.blob_exists(d) for d in digests)
    r = run_llmctl(tmp_path / "check", "pull", "-q", name)
    assert r.returncode == 0, r.stderr


def test_fifty_models_sharing_blobs_list_show_rm_df_prune(tmp_path: Path, monkeypatch) -> None:
    """Results, not timings: every command is right on a store of ~50 models sharing blobs, reads each
    manifest once, and `rm` of several names rewrites `index.json` once."""
    from llmctl.api import manage
    from llmctl.oci.layout import Store

    home = tmp_path / "home"
    populated = populate(home, 50, family_size=5, weights_kb=16)
    settings = Settings.from_env({"LLMCTL_HOME": str(home)})
    reads: list[str] = []
    writes: list[int] = []
    real_read, real_write = Store.read_blob, Store._write_index
    monkeypatch.setattr(Store, "read_blob", lambda self, d: (reads.append(d), real_read(self, d))[1])
    monkeypatch.setattr(Store, "_write_index", lambda self, m: (writes.append(len(m)), real_write(self, m))[1])

    listed = manage.list_models(settings)
    assert sorted(m.name for m in listed) == sorted(populated.names)
    assert len(reads) == len(set(reads)) == 50  # 55 names, 50 distinct manifests: each read once
    expected = brute_force_df(home)
    reads.clear()
    usage = manage.disk_usage(settings).to_json()
    assert {k: usage[k] for k in expected} == expected
    assert len(reads) == 50

    model = manage.show(settings, "team1/model-7:v1")
    assert model.system == "You are assistant number 7." and model.parameters["seed"] == 7
    assert model.facts.quantization == "Q4_K_M"

    # five names: two models of family 0 entirely, one of family 1, and both names of model 10
    doomed = ["team0/model-1:v1", "team0/model-2:v2", "team1/model-5:v2", "team2/model-10:v1", "alias/model-10"]
    before = {p.name for p in (home / "store/blobs/sha256").iterdir()}
    writes.clear()
    removed = manage.remove(settings, doomed)
    assert len(writes) == 1 and writes[0] == len(populated.names) - 5  # one rewrite of index.json
    assert removed.freed > 0 and not removed.deferred
    after = {p.name for p in (home / "store/blobs/sha256").iterdir()}
    assert after < before
    assert brute_force_df(home)["reclaimable_bytes"] == 0  # rm collected exactly the unreferenced blobs
    usage = manage.disk_usage(settings).to_json()
    assert {k: usage[k] for k in expected} == brute_force_df(home)
    assert manage.prune(settings).removed == 0
    assert manage.verify(settings) == []
    names = {m.name for m in manage.list_models(settings)}
    assert names == set(populated.names) - {"team0/model-1:v1", "team0/model-2:v2", "team1/model-5:v2",
                                            "team2/model-10:v1", "alias/model-10:latest"}

    from llmctl.errors import NotFound

    with pytest.raises(NotFound):  # one missing name: nothing is removed
        manage.remove(settings, ["team3/model-15:v0", "team0/model-1:v1"])
    assert "team3/model-15:v0" in {m.name for m in manage.list_models(settings)}


def test_parallel_transfers_stop_at_the_first_failure() -> None:
    from llmctl.oci.registry.transfer import Cancelled, Tracker, run_parallel

    tracker = Tracker(None, "testing")
    started: list[int] = []
    gate = threading.Event()

    def task(i: int) -> int:
        started.append(i)
        if i == 0:
            gate.wait(10)
            raise ValueError("the first one failed")
        if i == 1:
            gate.set()
            while True:
                tracker.check()  # raises Cancelled once the failure is known
                time.sleep(0.001)
        return i

    with pytest.raises(ValueError, match="first one failed"):
        run_parallel([lambda i=i: task(i) for i in range(10)], 2, tracker)
    assert sorted(started) == [0, 1]  # the queued ones never started
    assert run_parallel([lambda i=i: i * i for i in range(7)], 3, Tracker(None, "t")) == [i * i for i in range(7)]
    with pytest.raises(Cancelled):
        t = Tracker(None, "t")
        t.cancel.set()
        run_parallel([t.check], 1, t)


@pytest.mark.slow
def test_a_split_gguf_runs_and_answers_like_the_single_file(run_cli, engine, gemma_gguf: Path, tmp_path: Path) -> None:
    """llama.cpp finds a split model's shards by name; the store names blobs by digest. `run` gives the engine
    links named `model-0000i-of-0000N.gguf`: the split Gemma answers exactly as the one-file Gemma does."""
    split = engine.path.with_name("llama-gguf-split")
    if not split.exists():
        pytest.skip(f"no llama-gguf-split beside {engine.path}")
    out = subprocess.run([str(split), "--split", "--split-max-tensors", "100", str(gemma_gguf),
                          str(tmp_path / "gemma")], env=engine.environ(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    shards = sorted(tmp_path.glob("gemma-*-of-*.gguf"))
    assert len(shards) == 3
    home = tmp_path / "home"
    r = run_llmctl(home, "package", "-q", "--gguf", str(shards[1]), "gemma-split:3")
    assert r.returncode == 0, r.stderr
    greedy = ("--json", "--param", "temperature=0", "--param", "num_predict=12", "The capital of France is")
    env = {"LLMCTL_HOME": str(home)}
    split_answer = run_cli("run", "gemma-split:3", *greedy, env=env)
    assert split_answer.code == 0, split_answer.stderr
    whole_answer = run_cli("run", "gemma3:270m", *greedy)
    assert whole_answer.code == 0, whole_answer.stderr
    assert json.loads(split_answer.stdout)["response"] == json.loads(whole_answer.stdout)["response"] != ""
    links = sorted((home / "run/splits").glob("*/model-*.gguf"))
    assert [p.name for p in links] == [f"model-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert [p.resolve().parent.name for p in links] == ["sha256"] * 3


def test_a_split_model_is_sized_over_all_its_shards(tmp_path: Path) -> None:
    """The GPU offload planner sizes a split GGUF from every shard's tensors, not the first shard's."""
    from llmctl.api.models import get_model
    from llmctl.runtime.gpu.shape import model_shape

    home = tmp_path / "home"
    shard_model(tmp_path, home, "shardy:4", shards=4, size_mib=4)
    model = get_model(Settings.from_env({"LLMCTL_HOME": str(home)}), "shardy:4")
    shape = model_shape(model)
    assert shape is not None and shape.layers == 4 and len(shape.layer_bytes) == 4
    assert shape.weights == 4 << 20  # every tensor of every shard
