"""`--format lws | disaggregatedset | rbg`: the plan as Kubernetes objects, close to the upstream examples
(kubernetes-sigs/lws `docs/examples/vllm` for LeaderWorkerSet, its DisaggregatedSet sample, and RBG's P/D
leader-worker example). One LWS group (or RBG instance) is one engine instance; its size is the nodes the
instance spans; the leader serves HTTP, workers join it through LWS_LEADER_ADDRESS / RBG_LWP_LEADER_ADDRESS.
"""

from __future__ import annotations

from typing import Any

from llmctl.errors import PlanError
from llmctl.plan import k8s_names, lmcache
from llmctl.plan.k8s_objects import (
    ENGINE_PORT,
    NAME_LABEL,
    ROLE_LABEL,
    bootstrap_annotations,
    engine_container,
    meta,
    pd_selectors,
    pod_template,
    router_extra_ports,
    router_objects,
    service,
)
from llmctl.plan.k8s_weights import PodWeights, pod_weights
from llmctl.plan.launch import SGLANG_BOOTSTRAP_PORT, Endpoint
from llmctl.plan.render_common import (
    RenderedFile,
    RenderOptions,
    base_name,
    dump_yaml,
    header_lines,
    model_weights,
    served_plan,
    with_hash_seed,
)
from llmctl.plan.types import Plan, Role

LWS_API = "leaderworkerset.x-k8s.io/v1"
DS_API = "disaggregatedset.x-k8s.io/v1"
RBG_API = "workloads.x-k8s.io/v1alpha2"


def _labels(base: str, role: Role, pod_role: str) -> dict[str, str]:
    return {NAME_LABEL: base, ROLE_LABEL: role.name, "role": pod_role}


def lws_spec(plan: Plan, role: Role, base: str, opts: RenderOptions, pod: PodWeights) -> dict[str, Any]:
    """The LeaderWorkerSet spec of one role: `replicas` instances, each a group of `size` pods (one per node)."""
    size = role.nodes_per_instance
    leader = engine_container(plan, role, opts, pod, leader_addr="$(LWS_LEADER_ADDRESS)", rank="0",
                              group_size="$(LWS_GROUP_SIZE)", leader=True)
    annotations = bootstrap_annotations(plan, role)
    lwt: dict[str, Any] = {
        "size": size,
        "restartPolicy": "RecreateGroupOnPodRestart",
        "leaderTemplate": pod_template(leader, _labels(base, role, "leader"), pod, annotations),
    }
    if size > 1:
        worker = engine_container(plan, role, opts, pod, leader_addr="$(LWS_LEADER_ADDRESS)",
                                  rank="$(LWS_WORKER_INDEX)", group_size="$(LWS_GROUP_SIZE)", leader=False)
        lwt["workerTemplate"] = pod_template(worker, _labels(base, role, "worker"), pod)
    else:  # a group of one is its leader; the CRD still requires a worker template
        lwt["workerTemplate"] = pod_template(leader, _labels(base, role, "leader"), pod, annotations)
    return {"replicas": role.instances, "leaderWorkerTemplate": lwt}


def _lws(plan: Plan, role: Role, name: str, base: str, opts: RenderOptions, pod: PodWeights) -> dict[str, Any]:
    return {
        "apiVersion": LWS_API,
        "kind": "LeaderWorkerSet",
        "metadata": meta(name, opts.namespace, {NAME_LABEL: base}),
        "spec": lws_spec(plan, role, base, opts, pod),
    }


def render_lws(plan: Plan, opts: RenderOptions, pod: PodWeights) -> list[dict]:
    base = base_name(plan, opts)
    if plan.mode == "aggregated":
        role = plan.roles[0]
        objs = [_lws(plan, role, base, base, opts, pod)]
        selector = {"leaderworkerset.sigs.k8s.io/name": base, "role": "leader"}
        objs.append(service(f"{base}-leader", opts.namespace, selector, ENGINE_PORT, {NAME_LABEL: base}))
        return objs
    objs = [_lws(plan, r, f"{base}-{r.name}", base, opts, pod) for r in plan.roles]
    if lmcache.is_pd(plan):
        endpoints = [Endpoint(r.name, f"http://{k8s_names.lws_leader_address(f'{base}-{r.name}', i, opts.namespace)}"
                                      f":{ENGINE_PORT}")
                     for r in plan.roles for i in range(r.instances)]
        return objs + router_objects(plan, base, opts, selectors=None, endpoints=endpoints)
    return objs + router_objects(plan, base, opts, selectors=pd_selectors(base))


def render_disaggregatedset(plan: Plan, opts: RenderOptions, pod: PodWeights) -> list[dict]:
    if plan.mode != "disaggregated":
        raise PlanError(
            f"DisaggregatedSet needs a disaggregated plan; this one is aggregated ({plan.decision.reason})",
            hint="pass --disaggregate on, or use --format lws",
        )
    if lmcache.is_pd(plan):
        raise PlanError(
            "LMCache's P/D proxy takes fixed decoder host names, and a DisaggregatedSet names its LeaderWorkerSets "
            "after a revision hash, so their pods have no stable address to give it",
            hint="use --format lws or --format rbg, or --kv-connector NixlConnector",
        )
    base = base_name(plan, opts)
    ds = {
        "apiVersion": DS_API,
        "kind": "DisaggregatedSet",
        "metadata": meta(base, opts.namespace, {NAME_LABEL: base}),
        "spec": {
            "slices": 1,
            "roles": [
                {"name": r.name, "metadata": {"labels": {NAME_LABEL: base, ROLE_LABEL: r.name}},
                 "spec": lws_spec(plan, r, base, opts, pod)}
                for r in plan.roles
            ],
        },
    }
    return [ds] + router_objects(plan, base, opts, selectors=pd_selectors(base))


def _rbg_role(plan: Plan, role: Role, base: str, opts: RenderOptions, pod: PodWeights) -> dict[str, Any]:
    size = role.nodes_per_instance
    leader = engine_container(plan, role, opts, pod, leader_addr="$(RBG_LWP_LEADER_ADDRESS)", rank="0",
                              group_size="$(RBG_LWP_GROUP_SIZE)", leader=True)
    annotations = bootstrap_annotations(plan, role)
    out: dict[str, Any] = {"name": role.name, "replicas": role.instances}
    if size == 1:
        out["standalonePattern"] = {"template": pod_template(leader, _labels(base, role, "leader"), pod, annotations)}
        return out
    worker = engine_container(plan, role, opts, pod, leader_addr="$(RBG_LWP_LEADER_ADDRESS)",
                              rank="$(RBG_LWP_WORKER_INDEX)", group_size="$(RBG_LWP_GROUP_SIZE)", leader=False)
    template = pod_template(leader, {NAME_LABEL: base, ROLE_LABEL: role.name}, pod, annotations)
    out["leaderWorkerPattern"] = {
        "size": size,
        "template": template,
        "leaderTemplatePatch": {"metadata": {"labels": {"role": "leader"}}},
        "workerTemplatePatch": {
            "metadata": {"labels": {"role": "worker"}},
            "spec": {"containers": [{k: worker[k] for k in ("name", "command")}]},
        },
    }
    return out


def rbg_endpoint(base: str, role: Role, instance: int) -> str:
    """The serving pod of instance i of a role by its DNS name: the standalone pod, or the leader (member 0)
    of a leader/worker instance (k8s_names has the controller's rules and their sources)."""
    host = k8s_names.rbg_host(base, role.name, instance, leader_worker=role.nodes_per_instance > 1)
    return f"http://{host}:{ENGINE_PORT}"


def render_rbg(plan: Plan, opts: RenderOptions, pod: PodWeights) -> list[dict]:
    base = base_name(plan, opts)
    roles = [_rbg_role(plan, r, base, opts, pod) for r in plan.roles]
    objs: list[dict] = []
    if plan.mode == "disaggregated":
        endpoints = [
            Endpoint(r.name, rbg_endpoint(base, r, i),
                     str(SGLANG_BOOTSTRAP_PORT) if plan.engine == "sglang" and r.name == "prefill" else None)
            for r in plan.roles for i in range(r.instances)
        ]
        router = router_objects(plan, base, opts, selectors=None, endpoints=endpoints)
        deployment = next(o for o in router if o["kind"] == "Deployment")
        roles.insert(0, {
            "name": "router",
            "replicas": 1,
            "dependencies": [r.name for r in plan.roles],
            "standalonePattern": {"template": deployment["spec"]["template"]},
        })
        svc = service(base, opts.namespace, {NAME_LABEL: base, ROLE_LABEL: "router"}, ENGINE_PORT, {NAME_LABEL: base},
                      router_extra_ports(plan))
    else:
        svc = service(base, opts.namespace, {NAME_LABEL: base, ROLE_LABEL: plan.roles[0].name, "role": "leader"},
                      ENGINE_PORT, {NAME_LABEL: base})
    objs.append({
        "apiVersion": RBG_API,
        "kind": "RoleBasedGroup",
        "metadata": meta(base, opts.namespace, {NAME_LABEL: base}),
        "spec": {"roles": roles},
    })
    objs.append(svc)
    return objs


RENDERERS = {"lws": render_lws, "disaggregatedset": render_disaggregatedset, "rbg": render_rbg}


def render_k8s(plan: Plan, fmt: str, opts: RenderOptions | None = None) -> tuple[list[RenderedFile], list[dict]]:
    """(one multi-document YAML file, the objects in it)."""
    opts = with_hash_seed(plan, opts or RenderOptions())
    weights = model_weights(plan, opts)
    plan = served_plan(plan, weights.folder)
    objs = RENDERERS[fmt](plan, opts, pod_weights(plan, weights, opts))
    head = "".join(f"# {line}\n" for line in header_lines(plan))
    text = head + "---\n".join(dump_yaml(o) for o in objs)
    return [RenderedFile(f"{base_name(plan, opts)}-{fmt}.yaml", text)], objs
