"""`llmctl pull hf.co/ORG/REPO[:QUANT]` with the real huggingface_hub client.

There is no Hugging Face here, so these tests run the real huggingface_hub client (HfApi.list_repo_tree,
model_info and hf_hub_download, unchanged) against a local stand-in server on 127.0.0.1 that implements the
endpoints that client calls: `GET /api/models/{repo}/tree/{rev}`, `GET /api/models/{repo}[/revision/{rev}]`
and `HEAD`/`GET /{repo}/resolve/{rev}/{path}` with the X-Repo-Commit / X-Linked-Etag / X-Linked-Size
headers and Range. HF_ENDPOINT points the client at it, HF_HOME keeps the cache in the test's tmp dir.
The weights are the real Gemma 3 270M GGUF and tiny real GGUFs written with the `gguf` package.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from fixtures_registry import free_port, make_gguf
from llmctl.api.pull import pull
from llmctl.errors import InvalidInput, NotFound
from llmctl.oci import mediatypes as mt
from llmctl.settings import Settings
from llmctl.sources import hf

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HfRepo:
    files: dict[str, Path]  # path in repo -> local file
    card: dict = field(default_factory=dict)
    private_token: str | None = None


class StandInHub:
    """The subset of the Hub's HTTP API that huggingface_hub's download path uses."""

    def __init__(self) -> None:
        self.repos: dict[str, HfRepo] = {}
        self.port = free_port()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.busy: list[tuple[str, int, dict]] = []  # (path part, status, headers): answered once each, first
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.handle_any(head=True)

            def do_GET(self) -> None:
                self.handle_any(head=False)

            def reply(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def not_found(self, code: str, head: bool) -> None:
                self.reply(404, b'{"error":"not found"}', {"X-Error-Code": code, "Content-Type": "application/json"},
                           head)

            def handle_any(self, head: bool) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                auth = self.headers.get("Authorization")
                owner.requests.append((self.command, path, auth))
                busy = next((b for b in owner.busy if b[0] in path), None)
                if busy is not None:
                    owner.busy.remove(busy)
                    return self.reply(busy[1], b'{"error":"busy"}', {"Content-Type": "application/json", **busy[2]},
                                      head)
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
                    org, name, *tail = rest.split("/")
                    repo = owner.repos.get(f"{org}/{name}")
                    if repo is None or (repo.private_token and auth != f"Bearer {repo.private_token}"):
                        return self.not_found("RepoNotFound", head)
                    if tail[:1] == ["tree"]:
                        entries = [owner.entry(p, f) for p, f in sorted(repo.files.items())]
                        return self.reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)
                    info = {"id": f"{org}/{name}", "sha": COMMIT, "private": bool(repo.private_token),
                            "siblings": [{"rfilename": p} for p in sorted(repo.files)], "cardData": repo.card,
                            "tags": ["gguf"], "lastModified": "2025-08-14T10:00:00.000Z"}
                    return self.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head)
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = owner.repos.get(f"{parts[0]}/{parts[1]}")
                    if repo is None or (repo.private_token and auth != f"Bearer {repo.private_token}"):
                        return self.not_found("RepoNotFound", head)
                    file = repo.files.get("/".join(parts[4:]))
                    if file is None:
                        return self.not_found("EntryNotFound", head)
                    return self.send_file(file, head)
                self.not_found("RepoNotFound", head)

            def send_file(self, file: Path, head: bool) -> None:
                size = file.stat().st_size
                etag = owner.sha256(file)
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                           "X-Linked-Size": size, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
                start = 0
                rng = self.headers.get("Range")
                status = 200
                if rng and rng.startswith("bytes=") and not head:
                    start = int(rng[6:].split("-")[0])
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                headers["Content-Length"] = size - start
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, str(v))
                self.end_headers()
                if head:
                    return
                with open(file, "rb") as f:
                    f.seek(start)
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._sha: dict[Path, str] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sha256(self, file: Path) -> str:
        if file not in self._sha:
            h = hashlib.sha256()
            with open(file, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
            self._sha[file] = h.hexdigest()
        return self._sha[file]

    def entry(self, path: str, file: Path) -> dict:
        size = file.stat().st_size
        if path.endswith((".gguf", ".safetensors")):  # LFS: the git blob is the pointer file, the sha256 the content's
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256(file)}\nsize {size}\n"
            return {"type": "file", "oid": hashlib.sha1(b"blob %d\0%s" % (len(pointer), pointer.encode())).hexdigest(),
                    "size": size, "path": path, "lfs": {"oid": self.sha256(file), "size": size, "pointerSize": len(pointer)}}
        oid = hashlib.sha1(b"blob %d\0" % size + file.read_bytes()).hexdigest()  # git's blob id, as the Hub lists it
        return {"type": "file", "oid": oid, "size": size, "path": path}

    def downloads(self, suffix: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == "GET" and "/resolve/" in p and p.endswith(suffix))

    def start(self) -> "StandInHub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def hub(tmp_path: Path, gemma_gguf: Path) -> StandInHub:
    h = StandInHub().start()
    extra = tmp_path / "hub-files"
    extra.mkdir()
    (extra / "LICENSE").write_text("Gemma Terms of Use (stand-in copy for the test)\n")
    (extra / "template").write_text("{{ .Prompt }}")
    (extra / "params").write_text('{"stop": ["<end_of_turn>"], "temperature": 0.7}')
    h.repos["unsloth/Gemma-3-270M-GGUF"] = HfRepo({
        "gemma-3-270m-Q4_K_M.gguf": gemma_gguf,
        "gemma-3-270m-Q8_0.gguf": make_gguf(extra / "q8.gguf", name="q8", seed=1),
        "LICENSE": extra / "LICENSE",
        "template": extra / "template",
        "params": extra / "params",
        "README.md": extra / "LICENSE",
    })
    shards = extra / "shards"
    shards.mkdir()
    h.repos["org/Split-GGUF"] = HfRepo({
        **{f"Q2_K/split-Q2_K-0000{i}-of-00003.gguf": make_gguf(shards / f"s{i}.gguf", name=f"s{i}", seed=i)
           for i in (1, 2, 3)},
        "split-IQ4_XS.gguf": make_gguf(extra / "iq4.gguf", name="iq4", seed=9),
    }, card={"license": "apache-2.0"})
    h.repos["org/Private-GGUF"] = HfRepo({"only-F16.gguf": make_gguf(extra / "f16.gguf", seed=4)},
                                         private_token="hf_secret_token")
    yield h
    h.stop()


def _settings(home: Path, hub: StandInHub, **extra) -> Settings:
    env = {"LLMCTL_HOME": str(home), "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home.parent / "hf-home"), **extra}
    return Settings.from_env(env)


def test_names_and_quant_choice_are_ollamas() -> None:
    n = hf.parse_name("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")
    assert (n.repo_id, n.quant, str(n.reference)) == (
        "bartowski/Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", "hf.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M")
    assert hf.parse_name("https://huggingface.co/a/b").quant is None
    assert hf.is_hf_name("huggingface.co/a/b") and not hf.is_hf_name("docker.io/a/b")
    files = [hf.RemoteFile(p, 1, None) for p in (
        "m-Q4_K.gguf", "m-Q4_K_M.gguf", "m-IQ4_XS.gguf", "mmproj-F16.gguf", "big/m-Q8_0-00002-of-00002.gguf",
        "big/m-Q8_0-00001-of-00002.gguf")]
    assert [f.path for f in hf.select_weights(files, None, "x/y")] == ["m-Q4_K_M.gguf"]
    assert [f.path for f in hf.select_weights(files, "q4_k", "x/y")] == ["m-Q4_K.gguf"]
    assert [f.path for f in hf.select_weights(files, "IQ4_XS", "x/y")] == ["m-IQ4_XS.gguf"]
    assert [f.path for f in hf.select_weights(files, "Q8_0", "x/y")] == [
        "big/m-Q8_0-00001-of-00002.gguf", "big/m-Q8_0-00002-of-00002.gguf"]
    assert hf.select_projector(files).path == "mmproj-F16.gguf"
    with pytest.raises(NotFound, match="available"):
        hf.select_weights(files, "Q5_K_S", "x/y")
    with pytest.raises(NotFound, match="incomplete"):
        hf.select_weights(files[:-1], "Q8_0", "x/y")


def test_pull_default_quant_packages_license_template_params(hub: StandInHub, home: Path, gemma_gguf: Path) -> None:
    from llmctl.api.models import get_model

    settings = _settings(home, hub)
    result = pull(settings, "hf.co/unsloth/Gemma-3-270M-GGUF")
    assert result.source == "huggingface"
    assert str(result.reference) == "hf.co/unsloth/gemma-3-270m-gguf:latest"
    model = get_model(settings, "hf.co/unsloth/gemma-3-270m-gguf")
    assert model.weights[0].read_bytes() == gemma_gguf.read_bytes()  # Q4_K_M was chosen, byte for byte
    assert model.licenses == ("Gemma Terms of Use (stand-in copy for the test)\n",)
    assert model.template == "{{ .Prompt }}"
    assert model.parameters == {"stop": ["<end_of_turn>"], "temperature": 0.7}
    assert model.facts.architecture == "gemma3"
    # downloaded through huggingface_hub's cache: a second pull fetches nothing again
    assert hub.downloads("Q4_K_M.gguf") == 1
    cache = home.parent / "hf-home" / "hub" / "models--unsloth--Gemma-3-270M-GGUF"
    assert any(p.stat().st_size == gemma_gguf.stat().st_size for p in (cache / "blobs").iterdir())
    again = pull(settings, "hf.co/unsloth/Gemma-3-270M-GGUF")
    assert hub.downloads("Q4_K_M.gguf") == 1
    assert again.digest == result.digest  # created = the repo's last commit: reproducible


def test_pull_named_quant_and_sharded_model(hub: StandInHub, home: Path) -> None:
    from llmctl.api.models import get_model

    settings = _settings(home, hub)
    q8 = pull(settings, "hf.co/unsloth/Gemma-3-270M-GGUF:Q8_0")
    assert q8.reference.tag == "Q8_0"
    assert get_model(settings, "hf.co/unsloth/gemma-3-270m-gguf:Q8_0").facts.architecture == "llama"
    split = pull(settings, "hf.co/org/Split-GGUF:Q2_K")
    model = get_model(settings, "hf.co/org/split-gguf:Q2_K")
    assert len(model.weights) == 3  # every shard, in order
    hub_files = hub.repos["org/Split-GGUF"].files
    for i, w in enumerate(model.weights, start=1):
        assert w.read_bytes() == hub_files[f"Q2_K/split-Q2_K-0000{i}-of-00003.gguf"].read_bytes()
    assert model.licenses and "apache-2.0" in model.licenses[0]  # from the model card
    assert split.blobs >= 5
    with pytest.raises(InvalidInput, match="several GGUF"):
        pull(settings, "hf.co/org/Split-GGUF")  # no Q4_K_M and two candidates


def test_private_repo_needs_hf_token_and_unknown_repo_is_not_found(hub: StandInHub, home: Path) -> None:
    with pytest.raises(NotFound, match="not found on Hugging Face"):
        pull(_settings(home, hub), "hf.co/org/Private-GGUF")
    with pytest.raises(NotFound, match="not found"):
        pull(_settings(home, hub), "hf.co/org/Nothing-Here")
    result = pull(_settings(home, hub, HF_TOKEN="hf_secret_token"), "hf.co/org/Private-GGUF")
    assert result.reference.repository == "org/private-gguf"
    assert any(a == "Bearer hf_secret_token" for m, p, a in hub.requests if "/resolve/" in p)


def test_cli_pull_hf(hub: StandInHub, cli, home: Path) -> None:
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home.parent / "hf-home")}
    r = cli("pull", "hf.co/org/Split-GGUF:IQ4_XS", "--json", env=env)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["source"] == "huggingface" and data["reference"] == "hf.co/org/split-gguf:IQ4_XS"
    r = cli("show", "hf.co/org/split-gguf:IQ4_XS", "--json")
    assert r.code == 0 and json.loads(r.stdout)["architecture"] == "llama"
    r = cli("pull", "hf.co/org/Nope", env=env)
    assert r.code == 3 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_chat_template_from_gguf_becomes_a_layer(hub: StandInHub, home: Path, tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "chat-Q4_K_M.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("t", np.zeros(16, dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    hub.repos["org/Chat-GGUF"] = HfRepo({"chat-Q4_K_M.gguf": path})
    settings = _settings(home, hub)
    pull(settings, "hf.co/org/Chat-GGUF")
    from llmctl.api.models import get_model

    model = get_model(settings, "hf.co/org/chat-gguf")
    assert model.chat_template == "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert any(d.media_type == mt.CHAT_TEMPLATE for d in model.manifest.layers)


def test_offline_refuses_remote_hub(home: Path) -> None:
    from llmctl.errors import OfflineError

    settings = Settings.from_env({"LLMCTL_HOME": str(home), "LLMCTL_OFFLINE": "1"})
    with pytest.raises(OfflineError):
        pull(settings, "hf.co/org/anything")


def test_hub_errors_are_mapped_on_huggingface_hubs_own_classes() -> None:
    """LocalEntryNotFoundError (nothing cached, Hub unreachable) is an EntryNotFoundError too: it must be tested
    first, or an unreachable Hub reads as 'a file is gone from Hugging Face' (NotFound)."""
    from huggingface_hub import errors as hf_errors

    from llmctl.errors import OfflineError

    local = hf_errors.LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")
    assert isinstance(local, hf_errors.EntryNotFoundError)
    assert isinstance(hf._hub_error(local, "org/x"), OfflineError)
    assert isinstance(hf._hub_error(hf_errors.OfflineModeIsEnabled("offline mode is enabled"), "org/x"), OfflineError)
    assert isinstance(hf._hub_error(hf_errors.EntryNotFoundError("gone"), "org/x"), NotFound)


def test_pull_and_plan_classify_hub_errors_alike() -> None:
    """`pull hf.co/...` and `plan ORG/NAME` word a Hub failure each their own way, from one classification
    (hf_http.hub_failure): the same failure is the same error class, so the same exit code, for both."""
    import httpx2
    from huggingface_hub import errors as hf_errors

    from llmctl.api import plan_model
    from llmctl.errors import AuthError, OfflineError, RegistryError
    from llmctl.sources.hf_http import HubUnavailable, HubUnreachable

    refused = httpx2.Response(401, request=httpx2.Request("GET", "http://hub.test/api/models/org/x"))
    cases = [
        (HubUnavailable("hub.test answered 503", 503), RegistryError),
        (HubUnreachable("hub.test: connection refused"), OfflineError),
        (hf_errors.LocalEntryNotFoundError("nothing cached"), OfflineError),
        (hf_errors.EntryNotFoundError("gone"), NotFound),
        (hf_errors.HfHubHTTPError("unauthorized", response=refused), AuthError),
        (ValueError("something else"), RegistryError),
    ]
    for exc, kind in cases:
        assert type(hf._hub_error(exc, "org/x")) is kind, exc
        assert type(plan_model._hub_error(exc, "org/x")) is kind, exc


def test_cli_pull_hf_with_hf_hub_offline_is_one_line(cli, home: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:1", "HF_HOME": str(home.parent / "hf-home")}
    r = cli("pull", "hf.co/org/Uncached-GGUF", env=env)
    assert r.code == 11, r.stderr
    assert r.stderr.count("\n") == 1 and "HF_HUB_OFFLINE" in r.stderr and "Traceback" not in r.stderr


def _one_line(stderr: str) -> bool:
    return stderr.count("\n") == 1 and "Retrying" not in stderr and "Traceback" not in stderr


def test_unreachable_hub_is_one_line_after_a_bounded_quiet_retry(cli, home: Path) -> None:
    """huggingface_hub alone prints 'Retrying in Ns' twice per try and waits ~23 s; llmctl's client retries
    quietly for LLMCTL_HF_RETRY_SECONDS. Port 1 on loopback refuses connections."""
    env = {"HF_ENDPOINT": "http://127.0.0.1:1", "HF_HOME": str(home.parent / "hf-home"), "LLMCTL_HF_RETRY_SECONDS": "1"}
    r = cli("pull", "hf.co/org/Uncached-GGUF", env=env)
    assert r.code == 11 and _one_line(r.stderr), r.stderr
    assert "cannot reach Hugging Face for hf.co/org/Uncached-GGUF" in r.stderr and "Connection refused" in r.stderr
    r = cli("plan", "org/Uncached", env=env)
    assert r.code == 11 and _one_line(r.stderr), r.stderr
    assert "cannot reach Hugging Face for org/Uncached's config.json" in r.stderr


def test_transient_hub_failures_are_retried_quietly(hub: StandInHub, cli, home: Path) -> None:
    hub.busy += [("/tree/", 503, {}), ("/resolve/", 502, {}), ("/tree/", 429, {"Retry-After": "0"})]
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home.parent / "hf-home")}
    r = cli("pull", "hf.co/org/Split-GGUF:IQ4_XS", "--json", env=env)
    assert r.code == 0, r.stderr
    assert "Retrying" not in r.stderr and "thrown while requesting" not in r.stderr
    assert not hub.busy  # each failure was answered, and retried past
    assert json.loads(r.stdout)["reference"] == "hf.co/org/split-gguf:IQ4_XS"


def test_a_hub_asking_to_wait_longer_than_the_retry_time_fails_at_once(hub: StandInHub, cli, home: Path) -> None:
    """A 429 whose Retry-After is an hour is not waited (huggingface_hub would sleep it): RegistryError, one line."""
    hub.busy.append(("/tree/", 429, {"Retry-After": "3600"}))
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home.parent / "hf-home")}
    r = cli("pull", "hf.co/org/Split-GGUF:IQ4_XS", env=env, timeout=120)
    assert r.code == 6 and _one_line(r.stderr), r.stderr
    assert "Hugging Face is unavailable for hf.co/org/Split-GGUF" in r.stderr and "429" in r.stderr


def test_hf_retry_seconds_setting() -> None:
    assert Settings.from_env({}).hf_retry_seconds == 10.0
    assert Settings.from_env({"LLMCTL_HF_RETRY_SECONDS": "0"}).hf_retry_seconds == 0.0  # never retried
    for bad in ("-1", "soon", "inf", "nan"):
        assert Settings.from_env({"LLMCTL_HF_RETRY_SECONDS": bad}).hf_retry_seconds == 10.0


def test_a_download_the_hub_refuses_is_the_hubs_error_not_a_disk_error(hub: StandInHub, home: Path) -> None:
    """huggingface_hub's errors are OSErrors: a file gone (404) or a Hub still failing after the retry time
    was 'cannot write ... into the Hugging Face cache' (exit 1)."""
    from llmctl.errors import RegistryError

    settings = _settings(home, hub, LLMCTL_HF_RETRY_SECONDS="0")
    hub.busy.append(("/resolve/", 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}))
    with pytest.raises(NotFound, match="is gone from Hugging Face"):
        pull(settings, "hf.co/org/Split-GGUF:IQ4_XS")
    hub.busy.append(("/resolve/", 503, {}))
    with pytest.raises(RegistryError, match="Hugging Face is unavailable for hf.co/org/Split-GGUF.*503"):
        pull(settings, "hf.co/org/Split-GGUF:IQ4_XS")
    assert not hub.busy
