"""The weights step of a rendered plan, run for real: the init container's exact command (`sh -c` script and
environment, as rendered) against the real docker-registry, producing the folder the engine command points at.

Paths inside a pod (`/models`, the secret mount) are mapped to a tmp dir, as a volume mount would; the command
text itself is run unchanged. Image-volume mode: the artifact is laid out the way CRI-O mounts an OCI artifact
(each layer one file named by its `org.opencontainers.image.title` annotation: cri-o/cri-o#9062,
openshift/enhancements#1792), and the rendered link step turns it into the folder the engine loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import yaml

from fixtures_registry import PASSWORD, USER
from llmctl.api.plan import render_plan, resolve_model, text_checks
from llmctl.errors import PlanError
from llmctl.oci import mediatypes as mt
from llmctl.oci.reference import parse
from llmctl.plan import load_gpu, render, solve
from llmctl.plan.k8s_walk import pod_templates
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.types import PlanRequest, Workload
from llmctl.settings import Settings
from plan_artifacts import CONFIG_FILES, make_model_folder, read_safetensors_header, store_safetensors_model

BIN = Path(sys.executable).parent
INIT_REQUIREMENTS = Path(__file__).resolve().parent.parent / "images" / "llmctl-init" / "requirements.txt"


def _rendered_pod(settings: Settings, name: str, **opts) -> dict:
    """The pod as `llmctl plan` renders it. The test registry is on 127.0.0.1, which `render_plan` refuses for
    pods (inside a pod, loopback is the pod itself), so the pod comes from the same renderer without that check."""
    resolved = resolve_model(settings, name)
    plan = solve(PlanRequest(model=resolved.profile, gpu=load_gpu("h100-80gb"), gpus_per_node=8, workload=Workload()))
    options = RenderOptions(weights=resolved.weights, **opts)
    with pytest.raises(PlanError, match="loopback") if options.weights_mode == "init-container" else nullcontext():
        render_plan(settings, plan, "lws", options)
    files, report = render(plan, "lws", options, checks=text_checks(settings)[0])
    assert not report.problems
    lws = next(yaml.safe_load_all(files[0].content))
    return next(t for _, t in pod_templates(lws))


def _run_init(tpl: dict, mounts: dict[str, Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the pod's init container command as rendered, with each volume's mount path mapped to a directory."""
    init = tpl["spec"]["initContainers"][0]

    def mapped(value: str) -> str:
        for pod_path, host in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            if value == pod_path or value.startswith(pod_path + "/"):
                return str(host) + value[len(pod_path):]
        return value

    pod_env = {e["name"]: mapped(e["value"]) for e in init["env"]}
    full = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/"), **pod_env,
            **(env or {})}
    return subprocess.run(init["command"], env=full, capture_output=True, text=True, timeout=300, check=False)


def _engine_model(tpl: dict) -> str:
    return next(c for c in tpl["spec"]["containers"] if c["name"] == "engine")["command"][2]


def _same_model(folder: Path, original: Path) -> None:
    for name in CONFIG_FILES:
        assert (folder / name).read_bytes() == (original / name).read_bytes(), name
    shards = sorted(p.name for p in original.glob("*.safetensors"))
    assert sorted(p.name for p in folder.glob("*.safetensors")) == shards
    for name in shards:
        assert (folder / name).read_bytes() == (original / name).read_bytes()
        assert read_safetensors_header(folder / name)["__metadata__"] == {"format": "pt"}
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    from safetensors import safe_open  # what the engines load the folder with
    from transformers import AutoConfig

    for name in shards:
        with safe_open(str(folder / name), framework="np") as f:
            assert list(f.keys()) == list(read_safetensors_header(original / name).keys() - {"__metadata__"})
    assert AutoConfig.from_pretrained(str(folder), local_files_only=True).num_hidden_layers == 2


def test_init_container_exports_the_model_with_the_pull_secret(registry_basic, docker_config: Path, cli,
                                                              settings: Settings, tmp_path: Path):
    original = make_model_folder(tmp_path / "tiny")
    name = f"{registry_basic.host}/team/tiny:v1"
    store_safetensors_model(settings, original, parse(name))
    assert cli("login", registry_basic.host, "-u", USER, "--password-stdin", input=PASSWORD + "\n").code == 0
    assert cli("push", name).code == 0
    tpl = _rendered_pod(settings, name, pull_secret="regcred")
    # the kubernetes.io/dockerconfigjson Secret holds exactly such a docker config.json
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copy(docker_config / "config.json", secret / "config.json")
    volume = tmp_path / "volume"
    volume.mkdir()
    mounts = {"/models": volume, "/var/run/llmctl/registry": secret}
    # a fresh machine: nothing in any store, no credentials but the mounted secret
    run = _run_init(tpl, mounts)
    assert run.returncode == 0, run.stderr
    model = Path(str(volume) + _engine_model(tpl).removeprefix("/models"))
    _same_model(model, original)
    # a restarted pod (or a second pod on a shared PVC) finds the folder and fetches nothing
    registry_basic.kill()
    again = _run_init(tpl, mounts)
    assert again.returncode == 0, again.stderr
    _same_model(model, original)


def test_init_container_without_credentials_fails_and_leaves_no_folder(registry_basic, docker_config: Path, cli,
                                                                      settings: Settings, tmp_path: Path):
    original = make_model_folder(tmp_path / "tiny")
    name = f"{registry_basic.host}/team/tiny:v1"
    store_safetensors_model(settings, original, parse(name))
    assert cli("login", registry_basic.host, "-u", USER, "--password-stdin", input=PASSWORD + "\n").code == 0
    assert cli("push", name).code == 0
    tpl = _rendered_pod(settings, name, pull_secret="regcred")
    empty = tmp_path / "empty-secret"
    empty.mkdir()
    volume = tmp_path / "volume"
    volume.mkdir()
    run = _run_init(tpl, {"/models": volume, "/var/run/llmctl/registry": empty})
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert not Path(str(volume) + _engine_model(tpl).removeprefix("/models")).exists()


def test_image_volume_link_step_turns_a_cri_o_artifact_mount_into_the_engine_folder(registry, settings: Settings,
                                                                                    tmp_path: Path, cli):
    original = make_model_folder(tmp_path / "tiny")
    name = f"{registry.host}/team/tiny:v1"
    store_safetensors_model(settings, original, parse(name))
    assert cli("push", name).code == 0
    tpl = _rendered_pod(settings, name, weights_mode="image-volume")
    volume = next(v for v in tpl["spec"]["volumes"] if "image" in v)
    ref = parse(volume["image"]["reference"])
    # what CRI-O mounts for this reference: the registry's layers, one file each, named by their title
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=60, check=True)
    from llmctl.api.models import open_store

    store = open_store(settings)
    for layer in json.loads(out.stdout)["layers"]:
        (artifact / layer["annotations"][mt.ANNOTATION_TITLE]).write_bytes(store.read_blob(layer["digest"]))
    for f in artifact.iterdir():
        f.chmod(0o444)
    models = tmp_path / "models"
    models.mkdir()
    run = _run_init(tpl, {"/models": models, "/models-artifact": artifact})
    assert run.returncode == 0, run.stderr
    folder = Path(str(models) + _engine_model(tpl).removeprefix("/models"))
    _same_model(folder, original)
    assert all((folder / p.name).is_symlink() for p in original.glob("*.safetensors"))  # linked, not copied
    again = _run_init(tpl, {"/models": models, "/models-artifact": artifact})
    assert again.returncode == 0 and not (models / (folder.name + ".partial")).exists()


def test_init_image_installs_what_export_imports(registry, settings: Settings, tmp_path: Path, cli):
    """images/llmctl-init installs llmctl without its dependencies plus requirements.txt: every third-party
    distribution llmctl's code imports during a real `llmctl export` must be in that list (their own
    dependencies come with them)."""
    import ast
    import importlib.metadata as md
    import importlib.util
    import re

    original = make_model_folder(tmp_path / "tiny")
    name = f"{registry.host}/team/tiny:v1"
    store_safetensors_model(settings, original, parse(name))
    assert cli("push", name).code == 0
    env = {**os.environ, "LLMCTL_HOME": str(tmp_path / "fresh-home")}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmctl", "export", name, str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = {m.group(1) for m in re.finditer(r"^import time:.*\|\s+(\S+)$", run.stderr, re.M)}
    imported = set()  # what the llmctl modules that ran import, at any depth of their code
    for module in sorted(m for m in loaded if m.startswith("llmctl")):
        spec = importlib.util.find_spec(module)
        if spec is None or not (spec.origin or "").endswith(".py"):
            continue
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    ran = {m.split(".")[0] for m in loaded}  # imported by llmctl's code and loaded by this export
    owners = md.packages_distributions()
    dists = {d.lower().replace("_", "-") for mod in (imported & ran) - set(sys.stdlib_module_names)
             for d in owners.get(mod, [])}
    listed = {re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower() for line in INIT_REQUIREMENTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert dists - {"llmctl"} <= listed, sorted(dists - {"llmctl"} - listed)
