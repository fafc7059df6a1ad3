"""Kubernetes building blocks shared by the LWS, DisaggregatedSet and RoleBasedGroup renderers: containers
and pod templates close to the upstream LWS vLLM example, the router Deployment with its RBAC, Services."""

from __future__ import annotations

import shlex
from typing import Any

from llmctl.plan import lmcache
from llmctl.plan.k8s_weights import PodWeights, probes
from llmctl.plan.launch import (
    MOONCAKE_BOOTSTRAP_BASE,
    NIXL_SIDE_CHANNEL_BASE,
    ROUTER_PORT,
    Endpoint,
    Rank,
    dp_group_flags,
    engine_argv,
    hostport,
    router_argv,
)
from llmctl.plan.render_common import RenderOptions, base_name, engine_image, router_image
from llmctl.plan.types import Plan, Role

ENGINE_PORT = 8000
SHM_SIZE = "15Gi"  # as the upstream LWS vLLM example: NCCL and the engine's IPC use /dev/shm
ROLE_LABEL = "llmctl.dev/role"
NAME_LABEL = "app.kubernetes.io/name"
RAY_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"  # shipped in vllm/vllm-openai


def gpus_per_pod(plan: Plan, role: Role) -> int:
    return role.shape.gpus if role.nodes_per_instance == 1 else plan.request.gpus_per_node


def engine_container(
    plan: Plan, role: Role, opts: RenderOptions, pod: PodWeights, *, leader_addr: str, rank: str, group_size: str,
    leader: bool,
) -> dict[str, Any]:
    """The engine container of one pod of an instance; `rank` is "0" or an env reference for workers."""
    nnodes = role.nodes_per_instance
    ray = plan.request.executor == "ray" and plan.engine == "vllm" and nnodes > 1 and role.shape.dp == 1
    dp_group = plan.engine == "vllm" and role.shape.dp > 1
    dp: dict[str, str] = {}
    if dp_group:  # a worker's first DP rank is its LWS/RBG worker index x local ranks: shell arithmetic
        local = gpus_per_pod(plan, role) // role.shape.tp
        index = rank.removeprefix("$(").removesuffix(")")
        dp = dp_group_flags(role, 0 if leader else 1, local, leader_addr, f"$(({index} * {local}))")
    argv = engine_argv(plan, role, Rank(port=ENGINE_PORT, nnodes=nnodes, node_rank=rank if nnodes > 1 else 0,
                                        head_addr=leader_addr, executor=plan.request.executor, dp=dp))
    if ray:
        script = (f"bash {RAY_SCRIPT} leader --ray_cluster_size={group_size}; exec " + _join(argv)) if leader else \
            f"bash {RAY_SCRIPT} worker --ray_address={leader_addr}"
        command = ["sh", "-c", script]
    elif dp_group and not leader:
        command = ["sh", "-c", "exec " + _join(argv)]
    else:
        command = argv
    env: list[dict[str, Any]] = list(pod.env)
    if lmcache.is_pd(plan):  # every pod has its own address: each decoder uses the base port list
        proxy = f"{base_name(plan, opts)}.{opts.namespace}"  # the router Service
        env += [{"name": k, "value": v} for k, v in
                lmcache.engine_env(plan, role.name, proxy_host=proxy, hash_seed=opts.hash_seed or "0")]
    elif plan.mode == "disaggregated" and plan.engine == "vllm":
        env.append({"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        if plan.kv_connector == "MooncakeConnector":
            env.append({"name": "VLLM_MOONCAKE_BOOTSTRAP_PORT", "value": str(MOONCAKE_BOOTSTRAP_BASE)})
        else:
            env.append({"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_SIDE_CHANNEL_BASE)})
    gpus = str(gpus_per_pod(plan, role))
    container: dict[str, Any] = {
        "name": "engine",
        "image": engine_image(plan, opts),
        "command": command,
        "env": env,
        "resources": {
            "limits": {plan.request.gpu.k8s_resource: gpus},
            "requests": {plan.request.gpu.k8s_resource: gpus},
        },
        "volumeMounts": [{"mountPath": "/dev/shm", "name": "dshm"}] + list(pod.mounts),
    }
    if leader:
        container["ports"] = [{"name": "http", "containerPort": ENGINE_PORT}]
        container.update(probes(pod, ENGINE_PORT))
    return container


def _join(argv: list[str]) -> str:
    return " ".join(a if a.startswith("$(") else shlex.quote(a) for a in argv)


def pod_template(container: dict[str, Any], labels: dict[str, str], pod: PodWeights,
                 annotations: dict[str, str] | None = None) -> dict:
    """A pod: the engine container after the weights' init containers, with /dev/shm and the weights' volumes."""
    meta: dict[str, Any] = {"labels": labels}
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {}
    if pod.init_containers:
        spec["initContainers"] = list(pod.init_containers)
    spec["containers"] = [container]
    spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}] + list(pod.volumes)
    if pod.image_pull_secrets:
        spec["imagePullSecrets"] = list(pod.image_pull_secrets)
    if pod.security_context:
        spec["securityContext"] = dict(pod.security_context)
    return {"metadata": meta, "spec": spec}


def bootstrap_annotations(plan: Plan, role: Role) -> dict[str, str] | None:
    """Routers discovering prefill pods read the bootstrap port from this annotation (Mooncake / sglang)."""
    if plan.mode != "disaggregated" or role.name != "prefill":
        return None
    if plan.engine == "sglang":
        return {"sglang.ai/bootstrap-port": "8998"}
    if plan.kv_connector == "MooncakeConnector":
        return {"vllm.ai/bootstrap-port": str(MOONCAKE_BOOTSTRAP_BASE)}
    return None


def meta(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        out["labels"] = labels
    return out


def service(name: str, namespace: str, selector: dict[str, str], port: int, labels: dict[str, str],
            extra_ports: dict[str, int] | None = None) -> dict:
    ports = [{"name": "http", "port": port, "protocol": "TCP", "targetPort": port}]
    ports += [{"name": n, "port": p, "protocol": "TCP", "targetPort": p} for n, p in (extra_ports or {}).items()]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace, labels),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }


def router_extra_ports(plan: Plan) -> dict[str, int]:
    """LMCache's proxy also listens for "prefill done" notifications from every prefill rank."""
    return {"pd-notify": lmcache.PD_PROXY_PORT} if lmcache.is_pd(plan) else {}


def router_objects(plan: Plan, base: str, opts: RenderOptions, *, selectors: dict[str, list[str]] | None,
                   endpoints: list | None = None) -> list[dict]:
    """ServiceAccount + Role + RoleBinding (pod discovery) when routing by label selectors, the router
    Deployment, and the Service clients use."""
    ns = opts.namespace
    name = f"{base}-router"
    labels = {NAME_LABEL: base, ROLE_LABEL: "router"}
    if lmcache.is_pd(plan):  # static pod DNS names: the proxy has no service discovery
        argv = lmcache_proxy_argv(plan, endpoints or [])
    else:
        argv = router_argv(plan, endpoints, selectors=selectors, namespace=ns if selectors else None,
                           worker_port=ENGINE_PORT)
    extra = router_extra_ports(plan)
    container = {
        "name": "router",
        "image": router_image(plan, opts),
        "command": argv,
        "ports": [{"name": "http", "containerPort": ROUTER_PORT}]
        + [{"name": n, "containerPort": p} for n, p in extra.items()],
        **router_probes(plan),
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    objs: list[dict] = []
    if selectors is not None:
        pod_spec["serviceAccountName"] = name
        objs += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, ns, labels)},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta(name, ns, labels),
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(name, ns, labels),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        ]
    objs.append({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, ns, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    })
    objs.append(service(base, ns, labels, ROUTER_PORT, {NAME_LABEL: base}, extra))
    return objs


def router_probes(plan: Plan) -> dict[str, Any]:
    """vllm-router and sglang-router (one lineage) serve /liveness and /readiness (src/server.rs); /readiness
    fails while no worker is healthy, so the router Service sends traffic only where it can be served.
    LMCache's proxy (a FastAPI script) has no health route llmctl could confirm: a TCP check."""
    if lmcache.is_pd(plan):
        return {"readinessProbe": {"tcpSocket": {"port": ROUTER_PORT}, "periodSeconds": 10}}
    return {
        "readinessProbe": {"httpGet": {"path": "/readiness", "port": ROUTER_PORT}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/liveness", "port": ROUTER_PORT}, "periodSeconds": 20,
                          "failureThreshold": 6},
    }


def lmcache_proxy_argv(plan: Plan, endpoints: list[Endpoint]) -> list[str]:
    """LMCache's proxy for pods addressed by DNS name: every pod has its own address, so never incremental ports."""
    return lmcache.proxy_argv([hostport(e) for e in endpoints if e.role == "prefill"],
                              [hostport(e) for e in endpoints if e.role == "decode"], plan.role("decode").shape.tp,
                              script=lmcache.PROXY_SCRIPT_IN_IMAGE, port=ROUTER_PORT)


def pd_selectors(base: str) -> dict[str, list[str]]:
    """Router label selectors: the leader pod (HTTP server) of each prefill / decode instance."""
    return {
        "--prefill-selector": [f"{NAME_LABEL}={base}", f"{ROLE_LABEL}=prefill", "role=leader"],
        "--decode-selector": [f"{NAME_LABEL}={base}", f"{ROLE_LABEL}=decode", "role=leader"],
    }
