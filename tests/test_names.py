"""`llmctl.names`: the one home of model names with the configured defaults, host splitting, the loopback test
and the Hugging Face test. Every caller (offline pulls, plain-HTTP registries, `run`'s automatic pull, the
Hugging Face endpoint) asks these, so they are tables here; `LLMCTL_HOST` is in tests/test_gateway_values.py."""

from __future__ import annotations

import pytest

from llmctl.names import is_hf_host, is_hf_name, is_loopback, parse_name, short, split_host
from llmctl.oci.registry.tls import TlsOptions
from llmctl.settings import Settings


@pytest.mark.parametrize("host", [
    "localhost", "localhost:5000", "LOCALHOST:5000", "localhost.", "registry.localhost", "a.b.localhost:443",
    "127.0.0.1", "127.0.0.1:5000", "127.255.255.254:1", "127.1.2.3",
    "::1", "[::1]", "[::1]:5000", "0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]:80",
    "::ffff:127.0.0.1", "[::ffff:127.0.0.1]:5000", "[::ffff:7f00:1]:5000",
])
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", [
    "", "registry.example.com", "registry.example.com:5000", "10.0.0.1", "10.0.0.1:5000", "0.0.0.0", "[::]:80",
    "127.example.com", "127.0.0.1.nip.io", "localhost.example.com", "notlocalhost", "mylocalhost:5000",
    "::ffff:10.0.0.1", "[::ffff:8.8.8.8]:53", "fe80::1", "[2001:db8::1]:5000", "hf.co",
])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(("text", "host", "port"), [
    ("localhost:5000", "localhost", 5000), ("registry.example.com", "registry.example.com", None),
    ("[::1]:5000", "::1", 5000), ("[::1]", "::1", None), ("::1", "::1", None), ("host:abc", "host", None),
])
def test_split_host(text: str, host: str, port: int | None) -> None:
    assert split_host(text) == (host, port)


def test_plain_http_follows_the_one_loopback_test() -> None:
    tls = TlsOptions()
    assert tls.allows_http("registry.localhost:5000") and tls.allows_http("[::ffff:127.0.0.1]:5000")
    assert not tls.allows_http("127.example.com:5000")


@pytest.mark.parametrize(("name", "expected"), [
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", True), ("huggingface.co/org/repo", True),
    ("https://huggingface.co/org/repo", True), ("HTTPS://HF.CO/Org/Repo", True), ("  hf.co/a/b  ", True),
    ("hf.co", False), ("hf.co/", True), ("docker.io/library/gemma3", False), ("gemma3:270m", False),
    ("myhf.co/a/b", False), ("hf.co.evil.com/a/b", False), ("localhost:5000/hf.co/a", False),
])
def test_hugging_face_names(name: str, expected: bool) -> None:
    assert is_hf_name(name) is expected


def test_hugging_face_hosts() -> None:
    assert is_hf_host("hf.co") and is_hf_host("HuggingFace.co") and not is_hf_host("hf.com")


@pytest.mark.parametrize(("env", "typed", "full", "shown"), [
    ({}, "gemma3", "docker.io/library/gemma3:latest", "gemma3:latest"),
    ({}, "team/model:v1", "docker.io/team/model:v1", "team/model:v1"),
    ({"LLMCTL_REGISTRY": "localhost:5000/team"}, "model:v1", "localhost:5000/team/model:v1", "model:v1"),
    ({"LLMCTL_REGISTRY": "localhost:5000/team"}, "docker.io/library/gemma3", "docker.io/library/gemma3:latest",
     "docker.io/library/gemma3:latest"),
    ({}, "hf.co/Org/Repo-GGUF:Q4_K_M", "hf.co/org/repo-gguf:Q4_K_M", "hf.co/org/repo-gguf:Q4_K_M"),
])
def test_model_names_use_the_configured_defaults(env: dict[str, str], typed: str, full: str, shown: str) -> None:
    settings = Settings.from_env({"LLMCTL_HOME": "/nonexistent", **env})
    ref = parse_name(settings, typed)
    assert str(ref) == full and short(settings, ref) == shown


def test_every_module_takes_the_host_tests_from_names() -> None:
    """One home: `is_loopback`, `is_hf_name`, `is_hf_host`, `split_host` and `parse_host` are imported from
    llmctl.names, not through a module that happens to import them (which could start to disagree)."""
    import ast
    from pathlib import Path

    import llmctl

    helpers = {"is_loopback", "is_hf_name", "is_hf_host", "split_host", "parse_host"}
    elsewhere = []
    for path in Path(llmctl.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "llmctl.names":
                elsewhere += [f"{path.name}: {a.name} from {node.module}" for a in node.names if a.name in helpers]
    assert elsewhere == []
