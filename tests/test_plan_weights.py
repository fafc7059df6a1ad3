"""Where rendered pods get their weights: oci: (init container or image volume), hf: and pvc:, the volumes and
probes that go with them, pinned router images, and no path of the rendering machine in any output."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from llmctl.errors import PlanError
from llmctl.plan import find_catalog, load_gpu, render, solve
from llmctl.plan.k8s_walk import containers, pod_templates
from llmctl.plan.render_common import RenderOptions
from llmctl.plan.types import PlanRequest, Workload
from llmctl.plan.validate_k8s import validate_k8s
from llmctl.plan.weights import EXPORT_SCRIPT, Weights, parse_model_source

PD = Workload(isl=2048, osl=256, rate=10, ttft_slo=0.5, tpot_slo=0.05)
REF = "registry.example.com/team/llama@sha256:" + "ab" * 32
OCI = Weights("oci", REF, size_bytes=150 * 10**9, name="llama-v1")


def plan_for(model: str, **kw):
    w = kw.pop("workload", Workload())
    return solve(PlanRequest(model=find_catalog(model).profile(), gpu=load_gpu(kw.pop("gpu", "h100-80gb")),
                             gpus_per_node=8, workload=w, **kw))


def k8s(plan, fmt: str, **opts) -> list[dict]:
    files, report = render(plan, fmt, RenderOptions(**opts))
    assert not report.problems
    return list(yaml.safe_load_all(files[0].content))


def engine_pods(objs: list[dict]) -> list[tuple[str, dict]]:
    return [(w, t) for o in objs for w, t in pod_templates(o)
            if any(c["name"] == "engine" for c in t["spec"]["containers"])]


def engine(tpl: dict) -> dict:
    return next(c for c in tpl["spec"]["containers"] if c["name"] == "engine")


def model_arg(c: dict) -> str:
    cmd = c["command"]
    return cmd[2] if cmd[:2] == ["vllm", "serve"] else cmd[cmd.index("--model-path") + 1]


@pytest.mark.parametrize("fmt", ["lws", "rbg"])
def test_oci_init_container_fills_the_folder_the_engine_loads(fmt):
    plan = plan_for("llama3.1:405b")  # two nodes per instance: leader and worker pods both need the weights
    objs = k8s(plan, fmt, weights=OCI, pull_secret="regcred")
    pods = engine_pods(objs)
    assert len(pods) >= 2
    for where, tpl in pods:
        init = tpl["spec"]["initContainers"][0]
        env = {e["name"]: e.get("value") for e in init["env"]}
        assert init["command"] == ["sh", "-c", EXPORT_SCRIPT] and init["image"].startswith("ghcr.io/llmctl/llmctl-init:")
        assert env["MODEL_REF"] == REF and env["MODEL_DIR"] == model_arg(engine(tpl)) == OCI.folder
        assert env["LLMCTL_HOME"].startswith("/models/") and env["DOCKER_CONFIG"] == "/var/run/llmctl/registry"
        volumes = {v["name"]: v for v in tpl["spec"]["volumes"]}
        assert volumes["registry-auth"]["secret"] == {"secretName": "regcred", "items": [
            {"key": ".dockerconfigjson", "path": "config.json"}]}
        size = int(volumes["models"]["emptyDir"]["sizeLimit"].removesuffix("Gi"))
        assert size * 2**30 >= OCI.size_bytes
        eng = engine(tpl)
        eng_env = {e["name"]: e.get("value") for e in eng["env"]}
        assert "HF_TOKEN" not in eng_env and eng_env["HF_HUB_OFFLINE"] == "1"
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in eng["volumeMounts"]
    assert not any("imagePullSecrets" in t["spec"] for _, t in pods)  # the kubelet pulls no artifact here
    assert not any("securityContext" in t["spec"] for _, t in pods)  # an emptyDir is writable by the init user
    (_, shared), *_ = engine_pods(k8s(plan, fmt, weights=OCI, weights_volume="pvc:weights-cache"))
    assert shared["spec"]["securityContext"] == {"fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch"}
    assert {v["name"]: v for v in shared["spec"]["volumes"]}["models"]["persistentVolumeClaim"] == {
        "claimName": "weights-cache"}


def test_oci_image_volume_mounts_the_artifact_and_needs_kubernetes_1_33():
    plan = plan_for("llama3.1:8b")
    objs = k8s(plan, "lws", weights=OCI, weights_mode="image-volume", pull_secret="regcred")
    (_, tpl), *_ = engine_pods(objs)
    volumes = {v["name"]: v for v in tpl["spec"]["volumes"]}
    assert volumes["model-artifact"]["image"] == {"reference": REF, "pullPolicy": "IfNotPresent"}
    assert tpl["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    link = tpl["spec"]["initContainers"][0]
    assert "ln -s" in link["command"][2] and "tar -xf" in link["command"][2]
    assert {"name": "model-artifact", "mountPath": "/models-artifact", "readOnly": True} in engine(tpl)["volumeMounts"]
    assert not validate_k8s(objs, min_version="1.33").problems
    assert any("image" in p for p in validate_k8s(objs, min_version="1.30").problems)  # no volumes[].image in 1.30


def test_image_volume_folder_holds_what_the_link_step_unpacks():
    """Links take no room; tar layers are unpacked into the folder: modctl's default tars hold the weights."""
    plan = plan_for("llama3.1:8b")

    def folder_limit(weights: Weights) -> int:
        (_, tpl), *_ = engine_pods(k8s(plan, "lws", weights=weights, weights_mode="image-volume"))
        volumes = {v["name"]: v for v in tpl["spec"]["volumes"]}
        return int(volumes["models"]["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 2**30

    assert folder_limit(OCI) == 2 * 2**30  # raw layers: links and the small config archive
    small_tar = Weights("oci", REF, size_bytes=OCI.size_bytes, name="llama-v1", unpacked_bytes=20 * 2**20)
    assert folder_limit(small_tar) == 2 * 2**30
    tarred = Weights("oci", REF, size_bytes=OCI.size_bytes, name="llama-v1", unpacked_bytes=OCI.size_bytes)
    exported = int({v["name"]: v for v in engine_pods(k8s(plan, "lws", weights=OCI))[0][1]["spec"]["volumes"]}[
        "models"]["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 2**30
    assert folder_limit(tarred) == exported >= OCI.size_bytes  # sized as the init container's export volume


def test_pvc_source_is_mounted_read_only_and_refused_off_kubernetes():
    plan = plan_for("llama3.1:70b")
    objs = k8s(plan, "lws", weights=parse_model_source("pvc:model-cache/llama/70b"))
    (_, tpl), *_ = engine_pods(objs)
    assert model_arg(engine(tpl)) == "/models/llama/70b" and "initContainers" not in tpl["spec"]
    volumes = {v["name"]: v for v in tpl["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "model-cache", "readOnly": True}
    for fmt in ("shell", "compose"):
        with pytest.raises(PlanError, match="PersistentVolumeClaim"):
            render(plan_for("llama3.1:8b"), fmt, RenderOptions(weights=parse_model_source("pvc:c/m")))


def test_hf_weights_have_a_cache_volume_and_a_required_token_when_gated():
    plan = plan_for("llama3.1:70b")
    for gated, optional in ((True, None), (False, True)):
        weights = Weights("hf", plan.request.model.serve_id, size_bytes=141 * 10**9, gated=gated)
        objs = k8s(plan, "lws", weights=weights, weights_volume="pvc:hf-cache", hf_token_secret="my-token")
        (_, tpl), *_ = engine_pods(objs)
        env = {e["name"]: e for e in engine(tpl)["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional") is optional
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-token"
        assert env["HF_HOME"]["value"] == "/models/hf-home"
        assert {v["name"]: v for v in tpl["spec"]["volumes"]}["models"] == {
            "name": "models", "persistentVolumeClaim": {"claimName": "hf-cache"}}


def test_startup_probe_allows_for_the_weights_and_readiness_is_the_health_endpoint():
    small = Weights("hf", "meta-llama/Llama-3.1-8B-Instruct", size_bytes=16 * 10**9)
    big = Weights("hf", "meta-llama/Llama-3.1-405B-Instruct", size_bytes=812 * 10**9)
    probes = {}
    for model, w in (("llama3.1:8b", small), ("llama3.1:405b", big)):
        for engine_name in ("vllm", "sglang"):
            (_, tpl), *_ = engine_pods(k8s(plan_for(model, engine=engine_name), "lws", weights=w))
            eng = engine(tpl)
            assert eng["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
            assert eng["startupProbe"]["httpGet"] == {"path": "/health", "port": 8000}
            probes[model] = eng["startupProbe"]["failureThreshold"] * eng["startupProbe"]["periodSeconds"]
    assert probes["llama3.1:405b"] > probes["llama3.1:8b"] + 4000  # 812 GB downloaded and read by every pod


def test_routers_are_pinned_images_with_http_probes_and_nothing_installs_at_start():
    for engine_name, image in (("vllm", "vllm/vllm-router:v0.1.17"), ("sglang", "lmsysorg/sglang-router:v0.3.2")):
        plan = plan_for("llama3.1:70b", workload=PD, disaggregate="on", engine=engine_name)
        for fmt in ("lws", "rbg", "compose", "shell"):
            if fmt == "compose" and plan.nodes > 1:
                continue
            files, _ = render(plan, fmt)
            text = "".join(f.content for f in files)
            assert "pip install" not in text.replace(f"`pip install {engine_name}", "")
            if fmt in ("lws", "rbg"):
                docs = list(yaml.safe_load_all(text))
                router = next(c for o in docs for _, t in pod_templates(o) for c in containers(t) if c["name"] == "router")
                assert router["image"] == image
                assert router["readinessProbe"]["httpGet"]["path"] == "/readiness"


def test_shell_and_compose_export_oci_weights_before_the_engines_start():
    plan = plan_for("llama3.1:8b")
    files, _ = render(plan, "shell", RenderOptions(weights=OCI))
    script = files[0].content
    export = script.index(f"llmctl export {REF}")
    assert export < script.index("vllm serve") and f'"${{MODELS_DIR}}/{OCI.dir_name}"' in script
    files, _ = render(plan, "compose", RenderOptions(weights=OCI, init_image="example.com/init:1"))
    doc = yaml.safe_load(files[0].content)
    weights = doc["services"]["weights"]
    assert weights["image"] == "example.com/init:1" and weights["command"] == [EXPORT_SCRIPT]
    assert weights["environment"]["MODEL_DIR"] == OCI.folder and doc["volumes"] == {"models": {}}
    engines = [s for s in doc["services"].values() if "deploy" in s]
    assert all(s["depends_on"] == {"weights": {"condition": "service_completed_successfully"}} for s in engines)
    assert all(s["command"][1] == OCI.folder for s in engines)


def test_a_local_folder_plan_never_writes_a_path_of_this_machine(settings, tmp_path: Path, monkeypatch):
    """Every format of a plan made from a local folder: no tmp dir, $HOME or working directory in the output."""
    from llmctl.api.plan import model_source, resolve_model
    from llmctl.api.plan_model import from_folder

    folder = tmp_path / "work" / "llama-local"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(find_catalog("llama3.1:70b").config))
    monkeypatch.chdir(folder.parent)
    resolved = resolve_model(settings, str(folder))
    assert resolved.profile == from_folder(folder).profile
    forbidden = {str(tmp_path), str(folder), os.getcwd(), str(Path.home()), str(Path(os.getcwd()).resolve())}
    sources = ["oci:registry.example.com/team/llama-local:v1", "hf:meta-llama/Llama-3.1-70B-Instruct",
               "pvc:models/llama-local"]
    seen = 0
    shapes = ((Workload(), "off", 1, {}), (PD, "on", 8, {}), (Workload(), "off", 8, {"tp": 8, "pp": 2}))
    for workload, disaggregate, max_nodes, shape in shapes:  # one node, P/D pools, an instance over two nodes
        plan = solve(PlanRequest(model=resolved.profile, gpu=load_gpu("h100-80gb"), gpus_per_node=8,
                                 workload=workload, disaggregate=disaggregate, max_nodes=max_nodes, **shape))
        for source in sources:
            opts = RenderOptions(weights=model_source(settings, source, resolved))
            for fmt in ("shell", "compose", "lws", "disaggregatedset", "rbg"):
                try:
                    files, _ = render(plan, fmt, opts)
                except PlanError:
                    continue  # a format this plan or source cannot use (told so in one line)
                text = "".join(f.content for f in files)
                seen += 1
                for path in forbidden:
                    assert path not in text, f"{fmt} with {source} writes {path}"
        json_text = json.dumps(plan.to_dict())
        assert not any(p in json_text for p in forbidden)
    assert seen >= 25


def test_tampered_weights_are_caught_by_validation():
    objs = k8s(plan_for("llama3.1:8b"), "rbg", weights=OCI)
    bad = copy.deepcopy(objs)
    tpl = bad[0]["spec"]["roles"][0]["standalonePattern"]["template"]
    tpl["spec"]["initContainers"][0]["volumeMounts"][0]["mountPaht"] = "/models"
    assert any("mountPaht" in p for p in validate_k8s(bad).problems)
