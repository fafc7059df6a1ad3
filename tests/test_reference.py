"""Model names follow Docker's reference grammar; short names are stored fully qualified and shown short."""

from __future__ import annotations

import pytest

from llmctl.errors import InvalidReference
from llmctl.oci.reference import Reference, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gemma3", "docker.io/library/gemma3:latest"),
        ("gemma3:270m", "docker.io/library/gemma3:270m"),
        ("team/model:v1", "docker.io/team/model:v1"),
        ("ai/smollm2", "docker.io/ai/smollm2:latest"),
        ("localhost:5000/model", "localhost:5000/model:latest"),
        ("localhost/model:x", "localhost/model:x"),
        ("127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000/a/b/c:tag"),
        ("registry.example.com/team/m:q4_K_M", "registry.example.com/team/m:q4_K_M"),
        ("index.docker.io/library/x", "docker.io/library/x:latest"),
        (f"gemma3@{DIGEST}", f"docker.io/library/gemma3@{DIGEST}"),
        (f"gemma3:270m@{DIGEST}", f"docker.io/library/gemma3:270m@{DIGEST}"),
        ("my-model_v2.1", "docker.io/library/my-model_v2.1:latest"),
        ("a__b", "docker.io/library/a__b:latest"),
        ("REGISTRY.EXAMPLE.COM/team/m", "registry.example.com/team/m:latest"),
        ("hf.co/Org/Model-GGUF:Q4_K_M", "hf.co/org/model-gguf:Q4_K_M"),
        ("huggingface.co/bartowski/Llama-3.2-1B-GGUF", "huggingface.co/bartowski/llama-3.2-1b-gguf:latest"),
    ],
)
def test_parse_fills_defaults(text: str, expected: str) -> None:
    ref = parse(text)
    assert str(ref) == expected
    assert parse(str(ref)) == ref  # the long form round-trips


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Gemma3", "lowercase"),
        ("team/Model", "lowercase"),
        ("../etc/passwd", "must not start"),
        ("/abs/path", "must not start"),
        ("team/../x", "'..' is not allowed"),
        ("team//x", "empty path component"),
        ("team/x/", "empty path component"),
        ("x:" + "t" * 129, "longer than 128"),
        ("x:-bad", "invalid tag"),
        ("x:ta/g", "invalid registry"),
        ("x@sha256:abc", "invalid digest"),
        ("x@md5:" + "a" * 64, "invalid digest"),
        ("x@sha256:" + "A" * 64, "invalid digest"),
        ("has space", "whitespace"),
        ("a" * 300, "longer than 255"),
        ("-x", "must be lowercase letters"),
        ("x-", "must be lowercase letters"),
        ("x..y", "must be lowercase letters"),
        ("bad_host-.com/x", "invalid registry"),
        ("hf.co/Org/../x", "'..' is not allowed"),
        ("hf.co/Org/x..y", "lowercase"),
    ],
)
def test_bad_names_are_rejected_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse(text)
    assert reason in str(exc.value)
    assert "\n" not in str(exc.value)


def test_short_names_drop_the_defaults() -> None:
    assert parse("gemma3:270m").short() == "gemma3:270m"
    assert parse("team/m:v1").short() == "team/m:v1"
    assert parse("localhost:5000/m:v1").short() == "localhost:5000/m:v1"
    assert parse("docker.io/library/x").short() == "x:latest"


def test_configured_registry_and_namespace() -> None:
    ref = parse("model:v1", registry="registry.corp:5000", namespace="ml")
    assert str(ref) == "registry.corp:5000/ml/model:v1"
    assert ref.short("registry.corp:5000", "ml") == "model:v1"
    assert str(parse("team/model", registry="registry.corp:5000", namespace="ml")) == "registry.corp:5000/team/model:latest"
    assert str(parse("model", registry="r.example", namespace="")) == "r.example/model:latest"


def test_settings_read_llmctl_registry() -> None:
    from llmctl.settings import Settings

    s = Settings.from_env({"LLMCTL_REGISTRY": "localhost:5000/team", "HOME": "/tmp"})
    assert (s.registry, s.namespace) == ("localhost:5000", "team")
    s = Settings.from_env({"LLMCTL_REGISTRY": "ghcr.io", "HOME": "/tmp"})
    assert (s.registry, s.namespace) == ("ghcr.io", "")


def test_reference_helpers() -> None:
    ref = Reference("docker.io", "library/x", "v1")
    assert ref.with_tag("v2").tag == "v2"
    assert ref.with_digest(DIGEST).digest == DIGEST
    assert ref.name == "docker.io/library/x"
