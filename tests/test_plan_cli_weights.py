"""`llmctl plan` with weights sources on the command line: one line and the documented exit code for what
cannot be planned, notes for what the user must do, and nothing of this machine in the output."""

from __future__ import annotations

import json
from pathlib import Path

from llmctl.errors import InvalidInput, PlanError, UsageError
from llmctl.oci.reference import parse
from llmctl.plan import find_catalog
from llmctl.settings import Settings
from plan_artifacts import make_model_folder, store_safetensors_model


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "laptop" / "qwen3-local"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(find_catalog("qwen3:8b").config))
    return folder


def test_local_folder_needs_a_model_source_for_files(cli, tmp_path: Path):
    folder = _folder(tmp_path)
    r = cli("plan", str(folder), "--format", "lws")
    assert r.code == PlanError.exit_code and "--model-source" in r.stderr and r.stderr.count("\n") == 1
    r = cli("plan", str(folder), "--format", "json")  # sizing alone needs no source
    assert r.code == 0 and json.loads(r.stdout)["model"]["serve_id"] == "qwen3-local"
    r = cli("plan", str(folder), "--format", "rbg", "--model-source", "pvc:model-cache/qwen3-8b")
    assert r.code == 0, r.stderr
    assert str(tmp_path) not in r.stdout and "/models/qwen3-8b" in r.stdout


def test_bad_weights_options_are_usage_errors(cli, tmp_path: Path):
    folder = _folder(tmp_path)
    r = cli("plan", str(folder), "--format", "lws", "--model-source", "s3://bucket/qwen")
    assert r.code == InvalidInput.exit_code and "hf:ORG/NAME" in r.stderr
    r = cli("plan", "qwen3:8b", "--format", "lws", "--weights", "image-volume")
    assert r.code == UsageError.exit_code and "oci:" in r.stderr
    r = cli("plan", "qwen3:8b", "--format", "lws", "--weights", "tarball")
    assert r.code == UsageError.exit_code
    r = cli("plan", "qwen3:8b", "--format", "lws", "--weights-volume", "pvc:")
    assert r.code == UsageError.exit_code
    r = cli("plan", "qwen3:8b", "--format", "shell", "--model-source", "pvc:cache/qwen")
    assert r.code == PlanError.exit_code and "PersistentVolumeClaim" in r.stderr


def test_stored_model_plans_from_its_registry_with_a_note(cli, settings: Settings, tmp_path: Path):
    name = "registry.example.com/team/tiny:v1"
    digest = store_safetensors_model(settings, make_model_folder(tmp_path / "tiny"), parse(name))
    r = cli("plan", name, "--format", "lws", "--weights", "image-volume", "--pull-secret", "regcred")
    assert r.code == 0, r.stderr
    assert f"reference: registry.example.com/team/tiny@{digest}" in r.stdout and "imagePullSecrets" in r.stdout
    assert "llmctl push" in r.stderr  # pods pull it from the registry: it must be there
    explained = cli("plan", name)
    assert explained.code == 0 and explained.stdout.startswith(f"{name} on h100-80gb"), explained.stdout[:200]
    r = cli("plan", name, "--format", "lws", "--model-source", "hf:Qwen/Qwen3-8B")
    assert r.code == 0 and "- Qwen/Qwen3-8B" in r.stdout and "llmctl push" not in r.stderr


def test_kubectl_check_can_be_switched_off_and_says_so(cli):
    r = cli("plan", "qwen3:8b", "--format", "lws", env={"LLMCTL_PLAN_KUBECTL": "0"})
    assert r.code == 0 and "not checked: LLMCTL_PLAN_KUBECTL=0" in r.stderr
    r = cli("plan", "qwen3:8b", "--format", "compose", env={"LLMCTL_PLAN_KUBECTL": "0"})
    assert r.code == 0 and "kubectl" not in r.stderr  # no Kubernetes YAML, nothing skipped


def test_the_export_step_reaches_the_registry_as_the_user_does(cli, settings: Settings, tmp_path: Path):
    """A loopback registry is the container itself inside a pod or a compose service: refused there, in one line.
    A registry the user allows plain HTTP (LLMCTL_INSECURE_REGISTRIES) is allowed to the export step too."""
    import yaml

    folder = make_model_folder(tmp_path / "tiny")
    local = "localhost:5000/team/tiny:v1"
    store_safetensors_model(settings, folder, parse(local))
    for fmt in ("lws", "rbg", "compose"):
        r = cli("plan", local, "--format", fmt)
        assert r.code == PlanError.exit_code and "loopback" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert cli("plan", local, "--format", "shell").code == 0  # node scripts run on the hosts themselves
    assert cli("plan", local, "--format", "lws", "--weights", "image-volume").code == 0  # the node's runtime pulls

    internal = "registry.internal:5000/team/tiny:v1"
    store_safetensors_model(settings, folder, parse(internal))
    allowed = {"LLMCTL_INSECURE_REGISTRIES": "other:1,registry.internal:5000"}
    lws = cli("plan", internal, "--format", "lws", env=allowed)
    assert lws.code == 0, lws.stderr
    init = next(c for d in yaml.safe_load_all(lws.stdout) if d["kind"] == "LeaderWorkerSet"
                for c in d["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["initContainers"])
    value = {e["name"]: e["value"] for e in init["env"]}["LLMCTL_INSECURE_REGISTRIES"]
    assert Settings.from_env({"LLMCTL_INSECURE_REGISTRIES": value}).insecure_registries == ("registry.internal:5000",)
    compose = yaml.safe_load(cli("plan", internal, "--format", "compose", env=allowed).stdout)
    assert compose["services"]["weights"]["environment"]["LLMCTL_INSECURE_REGISTRIES"] == "registry.internal:5000"
    shell = cli("plan", internal, "--format", "shell", env=allowed)
    assert "|| LLMCTL_INSECURE_REGISTRIES=registry.internal:5000 llmctl export registry.internal:5000/" in shell.stdout
    assert "LLMCTL_INSECURE_REGISTRIES" not in cli("plan", internal, "--format", "lws").stdout  # only when allowed


def test_names_that_go_into_the_objects_are_checked_first(cli):
    """What the API server or the kubelet would refuse after `kubectl apply` is one line and exit 4 here."""
    bad = [("--namespace", "Team_A"), ("--pull-secret", "reg cred"), ("--hf-token-secret", "HF_TOKEN"),
           ("--weights-volume", "pvc:Cache_1"), ("--image", "not an image"), ("--router-image", "a/b:c d"),
           ("--init-image", "registry.example.com/init:\n1")]
    for flag, value in bad:
        r = cli("plan", "qwen3:8b", "--format", "lws", flag, value)
        assert r.code == InvalidInput.exit_code and flag in r.stderr and r.stderr.count("\n") == 1, (flag, r.stderr)
    good = ["--namespace", "team-a", "--pull-secret", "reg.cred", "--hf-token-secret", "hf-token",
            "--weights-volume", "pvc:cache-1", "--image", "registry.local:5000/vllm/vllm-openai:v0.33.0_cu128",
            "--init-image", "ghcr.io/llmctl/llmctl-init@sha256:" + "ab" * 32]
    r = cli("plan", "qwen3:8b", "--format", "lws", *good)
    assert r.code == 0, r.stderr
