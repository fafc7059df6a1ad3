"""The DNS names the LeaderWorkerSet and RoleBasedGroup controllers give the pods and Services they create.

A plan hands out addresses (router backends, `--master-addr`, `--dist-init-addr`, LMCache proxy targets);
each must be a name one of these controllers makes. The rules come from the controllers' code, not their
examples:

- kubernetes-sigs/lws: the leader StatefulSet `<lws>` (pods `<lws>-<group>`) and one worker StatefulSet per
  group (pods `<lws>-<group>-<index>`) share the headless Service `<lws>` (subdomainPolicy Shared, the
  default); the pod webhook sets `LWS_LEADER_ADDRESS=<lws>-<group>.<lws>.<namespace>`
  (pkg/webhooks/pod_webhook.go; test/integration/webhooks/pod_test.go expects "test-sample-1.test-sample.<ns>").
- sgl-project/rbg (v1alpha2, RoleInstanceSet workloads, the default): a role's workload is `<rbg>-<role>`
  (api/workloads/v1alpha2/helper.go GetWorkloadName, cut at 63 characters) and its headless Service
  `s-<rbg>-<role>` (GetServiceName, same cut); instance i of the set is `<rbg>-<role>-<i>`
  (pkg/reconciler/roleinstanceset/statefulmode/stateful_instance_set_utils.go getInstanceName). A
  standalone pod is named after its instance; a leader/worker instance names its pods `<instance>-<n>`,
  the leader n = 0 (pkg/reconciler/roleinstance/utils/instance_utils.go FormatComponentPodName). Only
  components with a service name get `hostname`/`subdomain` (roleinstance/core/instance_core.go
  setComponentPodIdentity): the standalone pod and the leader, not the workers. The leader address is
  `RBG_LWP_LEADER_ADDRESS=$(RBG_ROLE_INSTANCE_NAME)-0.<service>.<namespace>` (pkg/discovery/env_builder.go
  BuildLwsEnv).

So a multi-node RBG role's leader is `<rbg>-<role>-<i>-0.s-<rbg>-<role>`, not `<rbg>-<role>-<i>.s-...`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_NAME = 63
CLUSTER_DOMAIN = "cluster.local"


def _cut(name: str) -> str:
    """RBG's cut for names longer than a DNS label: the first 63 characters, trailing '-' trimmed."""
    return name[:MAX_NAME].rstrip("-") if len(name) > MAX_NAME else name


# -- LeaderWorkerSet ---------------------------------------------------------------------------------


def lws_service(lws: str) -> str:
    return lws


def lws_leader_pod(lws: str, group: int) -> str:
    return f"{lws}-{group}"


def lws_worker_pod(lws: str, group: int, index: int) -> str:
    return f"{lws}-{group}-{index}"


def lws_leader_address(lws: str, group: int, namespace: str) -> str:
    """The value of LWS_LEADER_ADDRESS in every pod of group `group`."""
    return f"{lws_leader_pod(lws, group)}.{lws_service(lws)}.{namespace}"


# -- RoleBasedGroup -----------------------------------------------------------------------------------


def rbg_workload(rbg: str, role: str) -> str:
    return _cut(f"{rbg}-{role}")


def rbg_service(rbg: str, role: str) -> str:
    return _cut(f"s-{rbg}-{role}")


def rbg_instance(rbg: str, role: str, index: int) -> str:
    return f"{rbg_workload(rbg, role)}-{index}"


def rbg_pod(rbg: str, role: str, index: int, *, leader_worker: bool, member: int = 0) -> str:
    """Pod `member` (0 = the leader) of instance `index`; a standalone pod is its instance."""
    instance = rbg_instance(rbg, role, index)
    return f"{instance}-{member}" if leader_worker else instance


def rbg_leader_address(rbg: str, role: str, index: int, namespace: str) -> str:
    """The value of RBG_LWP_LEADER_ADDRESS in the pods of a leader/worker instance."""
    return f"{rbg_pod(rbg, role, index, leader_worker=True)}.{rbg_service(rbg, role)}.{namespace}"


def rbg_host(rbg: str, role: str, index: int, *, leader_worker: bool) -> str:
    """The name a peer in the same namespace reaches an instance's serving pod at (`<pod>.<service>`)."""
    return f"{rbg_pod(rbg, role, index, leader_worker=leader_worker)}.{rbg_service(rbg, role)}"


# -- what a set of objects makes resolvable -----------------------------------------------------------


@dataclass(frozen=True)
class PodName:
    """A pod with a DNS record: `hostname.subdomain.namespace.svc.<cluster domain>`."""

    hostname: str
    subdomain: str
    namespace: str

    def forms(self) -> set[str]:
        """Every spelling that resolves from a pod in the same namespace."""
        base = f"{self.hostname}.{self.subdomain}"
        return {base, f"{base}.{self.namespace}", f"{base}.{self.namespace}.svc",
                f"{base}.{self.namespace}.svc.{CLUSTER_DOMAIN}"}


def service_forms(name: str, namespace: str) -> set[str]:
    return {name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"}


def lws_names(lws: str, replicas: int, size: int, namespace: str) -> set[str]:
    """DNS names of every pod of a LeaderWorkerSet (its Service `<lws>` is also the pods' subdomain)."""
    out = service_forms(lws_service(lws), namespace)
    for g in range(replicas):
        out |= PodName(lws_leader_pod(lws, g), lws_service(lws), namespace).forms()
        for w in range(1, size):
            out |= PodName(lws_worker_pod(lws, g, w), lws_service(lws), namespace).forms()
    return out


def rbg_names(rbg: str, role: str, replicas: int, namespace: str, *, leader_worker: bool) -> set[str]:
    """DNS names of a RoleBasedGroup role: its Service and the pods that get a hostname (standalone pods and
    leaders; workers of a leader/worker instance have none)."""
    svc = rbg_service(rbg, role)
    out = service_forms(svc, namespace)
    for i in range(replicas):
        out |= PodName(rbg_pod(rbg, role, i, leader_worker=leader_worker), svc, namespace).forms()
    return out
