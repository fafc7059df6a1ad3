"""Faults with real parts: the registry killed (SIGKILL) mid-push and mid-pull, then retried and resumed;
a proxy serving corrupt blobs, 503s and 429s; Ctrl-C; a full disk (RLIMIT_FSIZE). Every failure must be
one line with a documented exit code, and nothing unverified may enter the store."""

from __future__ import annotations

import filecmp
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures_registry import RegistryServer
from llmctl.api.models import get_model, open_store
from llmctl.api.package import PackageSpec, package
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.errors import IntegrityError, RegistryError
from llmctl.oci.registry.client import RetryPolicy
from llmctl.settings import Settings

FAST = RetryPolicy(attempts=2, base=0.02, cap=0.05)
MB = 1_000_000


class KillAt:
    """A Progress that SIGKILLs the registry once `threshold` bytes have moved: a crash mid-transfer."""

    def __init__(self, registry: RegistryServer, threshold: int) -> None:
        self.registry, self.threshold, self.done, self.killed = registry, threshold, 0, False

    def start(self, key: str, description: str, total: int | None) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        if key == "total":
            return
        self.done += amount
        if self.done >= self.threshold and not self.killed:
            self.killed = True
            self.registry.kill()

    def finish(self, key: str, message: str | None = None) -> None:
        pass


def partials(settings: Settings) -> list[Path]:
    return sorted((settings.store_dir / "ingest").glob("*.partial"))


def _publish_gemma(registry: RegistryServer, gemma_gguf: Path, tmp_path: Path) -> str:
    publisher = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "publisher")})
    name = f"{registry.host}/team/gemma3:270m"
    package(publisher, name, PackageSpec(gguf=gemma_gguf))
    push(publisher, name)
    return name


@pytest.mark.slow
def test_registry_killed_mid_pull_then_pull_resumes(registry: RegistryServer, settings: Settings,
                                                    gemma_gguf: Path, tmp_path: Path) -> None:
    name = _publish_gemma(registry, gemma_gguf, tmp_path)
    killer = KillAt(registry, 80 * MB)
    with pytest.raises(RegistryError, match="lost|unreachable"):
        pull(settings, name, progress=killer, retry=FAST)
    assert killer.killed
    [partial] = partials(settings)
    kept = partial.stat().st_size
    assert kept >= 80 * MB
    with pytest.raises(Exception):
        get_model(settings, name)  # nothing tagged

    registry.start()
    result = pull(settings, name)
    assert result.resumed == kept
    assert result.downloaded == result.total - kept - result.skipped  # only the rest crossed the network
    assert filecmp.cmp(get_model(settings, name).weights[0], gemma_gguf, shallow=False)
    assert partials(settings) == []


@pytest.mark.slow
def test_registry_killed_mid_push_then_push_again(registry: RegistryServer, settings: Settings,
                                                  gemma_gguf: Path, tmp_path: Path) -> None:
    name = f"{registry.host}/team/gemma3:270m"
    package(settings, name, PackageSpec(gguf=gemma_gguf))
    killer = KillAt(registry, 80 * MB)
    with pytest.raises(RegistryError):
        push(settings, name, progress=killer, retry=FAST)
    assert killer.killed

    registry.start()
    result = push(settings, name)
    assert result.uploaded >= gemma_gguf.stat().st_size  # the interrupted blob went again, whole
    assert result.skipped + result.uploaded == result.total
    fresh = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "fresh")})
    pull(fresh, name)
    assert filecmp.cmp(get_model(fresh, name).weights[0], gemma_gguf, shallow=False)


def test_corrupt_blob_is_rejected_and_nothing_is_stored(registry: RegistryServer, fault_proxy, settings: Settings,
                                                        small_gguf: Path, tmp_path: Path, cli) -> None:
    publisher = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "publisher")})
    package(publisher, f"{registry.host}/team/tiny:v1", PackageSpec(gguf=small_gguf))
    push(publisher, f"{registry.host}/team/tiny:v1")
    proxy = fault_proxy(corrupt_blobs=True)

    with pytest.raises(IntegrityError, match="corrupt"):
        pull(settings, f"{proxy.host}/team/tiny:v1", concurrency=1)
    store = open_store(settings)
    assert store.entries() == [] and list(store.blobs_dir.iterdir()) == []  # not a byte, not a tag
    assert partials(settings) == []  # the corrupt download is deleted, not kept for a "resume"

    r = cli("pull", f"{proxy.host}/team/tiny:v1")
    assert r.code == 5 and "corrupt" in r.stderr and "nothing was stored" in r.stderr
    assert len(r.stderr.strip().splitlines()[-1]) < 400 and "Traceback" not in r.stderr


def test_5xx_and_429_are_retried_then_reported(registry: RegistryServer, fault_proxy, settings: Settings,
                                               small_gguf: Path, cli) -> None:
    package(settings, f"{registry.host}/team/tiny:v1", PackageSpec(gguf=small_gguf))
    push(settings, f"{registry.host}/team/tiny:v1")

    flaky = fault_proxy(fail_first=3)
    assert pull(settings, f"{flaky.host}/team/tiny:v1", retry=RetryPolicy(attempts=5, base=0.01)).total > 0
    assert [s for _, _, s in flaky.requests[:3]] == [503, 503, 503]

    down = fault_proxy(fail_first=10_000)
    with pytest.raises(RegistryError, match="503 .* after 3 attempts"):
        pull(settings, f"{down.host}/team/tiny:v1", retry=RetryPolicy(attempts=3, base=0.01))

    limited = fault_proxy(fail_first=10_000, fail_status=429)
    r = cli("pull", f"{limited.host}/team/tiny:v1", env={"LLMCTL_REGISTRY_RETRIES": "2"})
    assert r.code == 6 and "rate limiting" in r.stderr

    r = cli("pull", "127.0.0.1:9/team/tiny:v1", env={"LLMCTL_REGISTRY_RETRIES": "1"})
    assert r.code == 6 and "unreachable" in r.stderr and "Traceback" not in r.stderr


# RFC 2606: .invalid never resolves, offline or not (EAI_NONAME), so no test depends on the network.
UNRESOLVABLE = "registry.llmctl-test.invalid"


def test_a_name_that_does_not_resolve_fails_at_once_and_others_are_retried(settings: Settings) -> None:
    from llmctl.oci.registry.client import RegistryClient

    def attempts(registry: str) -> tuple[str, list[float]]:
        waits: list[float] = []
        with RegistryClient(registry, retry=RetryPolicy(attempts=3, base=0.01), sleep=waits.append) as client:
            with pytest.raises(RegistryError) as failed:
                client.request("GET", "/v2/team/m/manifests/v1")
        return str(failed.value), waits

    message, waits = attempts(UNRESOLVABLE)
    assert (message, waits) == (f"cannot resolve {UNRESOLVABLE}: unknown host", [])  # no backoff, no retry
    message, waits = attempts("127.0.0.1:9")  # refused: transient, retried with backoff
    assert "connection refused" in message and len(waits) == 2


def test_unresolvable_hosts_are_one_line_from_every_command(cli) -> None:
    online = {"LLMCTL_OFFLINE": "0"}  # offline mode would refuse the name before resolving it
    assert cli("tag", "gemma3:270m", f"{UNRESOLVABLE}/team/g:v1").code == 0
    for args in (("pull", f"{UNRESOLVABLE}/team/g:v1"), ("push", f"{UNRESOLVABLE}/team/g:v1"),
                 ("pull", f"{UNRESOLVABLE}:5000/team/g:v1", "--insecure"),
                 ("login", UNRESOLVABLE, "-u", "me", "--password-stdin")):
        r = cli(*args, env=online, input="secret\n")
        assert r.code == RegistryError.exit_code, (args, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("llmctl: error:")]  # push: progress first
        assert errors == [f"llmctl: error: cannot resolve {UNRESOLVABLE}: unknown host"], (args, r.stderr)
        assert r.stderr.endswith(errors[0] + "\n") and "Traceback" not in r.stderr


def test_a_blob_redirect_to_a_host_that_does_not_resolve_is_not_retried(registry: RegistryServer, fault_proxy,
                                                                       settings: Settings, small_gguf: Path,
                                                                       tmp_path: Path) -> None:
    package(settings, f"{registry.host}/team/tiny:v1", PackageSpec(gguf=small_gguf))
    push(settings, f"{registry.host}/team/tiny:v1")
    bucket = fault_proxy(redirect_blobs=f"bucket.{UNRESOLVABLE}")
    puller = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "puller")})
    with pytest.raises(RegistryError) as failed:
        pull(puller, f"{bucket.host}/team/tiny:v1", retry=RetryPolicy(attempts=5, base=0.01))
    assert str(failed.value) == (f"cannot resolve bucket.{UNRESOLVABLE}: unknown host "
                                 f"(reached through registry {bucket.host})")
    blob_gets = [path for method, path, _ in bucket.requests if method == "GET" and "/blobs/" in path]
    assert blob_gets and len(blob_gets) == len(set(blob_gets))  # each blob asked for once: no retry


@pytest.mark.slow
def test_ctrl_c_keeps_the_partial_file_and_the_next_pull_resumes(registry: RegistryServer, fault_proxy,
                                                                 gemma_gguf: Path, tmp_path: Path, home: Path) -> None:
    _publish_gemma(registry, gemma_gguf, tmp_path)
    slow = fault_proxy(rate=20 * MB)  # ~13 s for the model: a wide window for the poll below on a busy machine
    env = {**os.environ, "LLMCTL_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "pull", f"{slow.host}/team/gemma3:270m"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    settings = Settings.from_env({"LLMCTL_HOME": str(home)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = partials(settings) if settings.store_dir.exists() else []
        if any(p.stat().st_size > 20 * MB for p in found if p.exists()):
            break
        assert proc.poll() is None, f"the pull ended before 20 MB were on disk: {proc.communicate()[1]}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err and "Traceback" not in err
    [partial] = partials(settings)
    kept = partial.stat().st_size
    assert kept > 20 * MB

    r = subprocess.run([sys.executable, "-m", "llmctl", "pull", f"{registry.host}/team/gemma3:270m", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_bytes"] >= kept
    assert filecmp.cmp(get_model(settings, f"{registry.host}/team/gemma3:270m").weights[0], gemma_gguf, shallow=False)


@pytest.mark.slow
def test_disk_full_is_one_line_and_the_pull_resumes(registry: RegistryServer, gemma_gguf: Path, tmp_path: Path,
                                                   home: Path) -> None:
    """RLIMIT_FSIZE makes every write past 40 MB fail (EFBIG), as a full disk fails writes (ENOSPC)."""
    name = _publish_gemma(registry, gemma_gguf, tmp_path)
    env = {**os.environ, "LLMCTL_HOME": str(home)}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (40 * MB, 40 * MB))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    r = subprocess.run([sys.executable, "-m", "llmctl", "pull", name], env=env, capture_output=True, text=True,
                       timeout=120, preexec_fn=limit)
    assert r.returncode == 1, r.stderr
    assert "disk full" in r.stderr and "Traceback" not in r.stderr
    settings = Settings.from_env({"LLMCTL_HOME": str(home)})
    [partial] = partials(settings)
    assert partial.stat().st_size == 40 * MB

    r = subprocess.run([sys.executable, "-m", "llmctl", "pull", name, "--json"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_bytes"] == 40 * MB
