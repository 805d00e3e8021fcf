"""Pods and workloads as the Kubernetes API returns them (camelCase JSON dicts), read for the restart.

Pure functions: what a pod's sidecar and redirection are, which workload owns it, how a workload rolls
out its pods, and the slim copies of listed objects that keep a cluster's worth of them small.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from settings.model import DATAPLANE_MODE_LABEL, REVISION_LABEL

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
"""The annotation `kubectl rollout restart` sets on the pod template."""
FINGERPRINT_ANNOTATION = "aks-istio.dev/cni-fingerprint"
"""Records on the pod template the declared data plane (its `restart.plan.fingerprint`) the workload was last
restarted for. A contract with running clusters, named when the CNI setting was all it covered: a re-run
recognises what an interrupted run already restarted by this key and value, so both stay as they are."""

MESH_POD_LABEL = "security.istio.io/tlsMode"
"""istiod's injector labels every pod it injects with it (sidecars and gateways alike): the restart lists pods by
it, so that pods outside the mesh are never transferred."""

SIDECAR_CONTAINER = "istio-proxy"
IPTABLES_INIT_CONTAINER = "istio-init"
CNI_VALIDATION_CONTAINER = "istio-validation"

ROLLABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
"""Kinds whose pods are recreated by a change of the pod template."""
KNOWN_OWNERS = {("apps", "ReplicaSet"), ("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
                ("batch", "Job")}  # fmt: skip
"""Owner kinds recognised by their API group as well as their kind: `apps.kruise.io` also has a StatefulSet."""
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
"""The Deployment controller names each ReplicaSet `<deployment>-<hash>` and labels its pods with the hash."""
INJECT_KEY = "sidecar.istio.io/inject"
"""A pod's own choice about injection, as a label (what istiod's webhook selects on) or an annotation."""
INJECT_TEMPLATES_ANNOTATION = "inject.istio.io/templates"
"""Names the injection templates istiod used or is to use (`gateway`, `grpc-agent`, ...): a pod istiod handled."""
CAPTURED_ANNOTATION = "ambient.istio.io/redirection"
"""Written on a pod by the CNI node agent once ztunnel captures its traffic (`enabled`)."""
HBONE_ENV = "ISTIO_META_ENABLE_HBONE"
"""The ambient profile's proxy metadata: a sidecar injected with it speaks HBONE, so it reaches ambient pods."""


class Redirection(StrEnum):
    """How a pod's traffic is redirected into its sidecar, read from its init containers."""

    IPTABLES_INIT = IPTABLES_INIT_CONTAINER
    CNI = CNI_VALIDATION_CONTAINER
    NONE = "none"
    """No redirection set up in the pod (gateways, `interceptionMode: NONE`)."""


MISSING_REPLICASET = "ReplicaSet (not found)"
"""The owner kind of a pod whose ReplicaSet was not listed (deleted in between)."""
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
"""Kubernetes' object names (a DNS-1123 subdomain); namespaces are labels, a subset."""
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}(\.[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?")
"""A kind, qualified with its API group where `owner_kind` adds one (`Rollout.argoproj.io`)."""
_SHOWN = 40


def readable(value: str, pattern: re.Pattern[str]) -> str:
    """`value` if it follows `pattern`, else an escaped, bounded placeholder: `invalid(x\\x0a\\x2a...)`.

    The API server does not check the kind and name of an owner reference, so a tenant can write anything there,
    and the name is shown in logs, outputs and a pull request's comment. Letters, digits, `.` and `-` stay as
    they are, anything else becomes `\\xNN` (`\\uNNNN`): no control character, Markdown or workflow command.
    """
    if pattern.fullmatch(value):
        return value
    escaped = "".join(
        char if char.isascii() and (char.isalnum() or char in ".-") else f"\\x{ord(char):02x}" if ord(char) < 256
        else f"\\u{ord(char):04x}"
        for char in value[:_SHOWN]
    )  # fmt: skip
    return f"invalid({escaped}{'...' if len(value) > _SHOWN else ''})"


@dataclass(frozen=True, order=True)
class WorkloadRef:
    """A workload (or bare pod) read from the cluster; its kind and names are checked as it is made (`readable`)."""

    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind != MISSING_REPLICASET:
            object.__setattr__(self, "kind", readable(self.kind, _KIND))
        object.__setattr__(self, "namespace", readable(self.namespace, _NAME))
        object.__setattr__(self, "name", readable(self.name, _NAME))

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


def _containers(pod: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or [])


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """An `istio-proxy` container, or its native-sidecar form: an init container with `restartPolicy: Always`."""
    if any(c.get("name") == SIDECAR_CONTAINER for c in _containers(pod, "containers")):
        return True
    return any(
        c.get("name") == SIDECAR_CONTAINER and c.get("restartPolicy") == "Always"
        for c in _containers(pod, "initContainers")
    )


def _injection_choice(pod: Mapping[str, Any]) -> str | None:
    """The pod's `sidecar.istio.io/inject`, the label first (as istiod's webhook reads it)."""
    meta = metadata_of(pod)
    for source in (meta.get("labels"), meta.get("annotations")):
        value = (source or {}).get(INJECT_KEY)
        if isinstance(value, str):
            return value.lower()
    return None


def sidecar_not_due(pod: Mapping[str, Any]) -> bool:
    """The pod runs without a sidecar on purpose, or istiod leaves it without one: `sidecar.istio.io/inject:
    "false"`; on the host's network (never injected); or handled by istiod with a template that adds no
    `istio-proxy` (proxyless gRPC): it carries istiod's mark (`MESH_POD_LABEL`, or the templates annotation)."""
    meta = metadata_of(pod)
    return (
        _injection_choice(pod) == "false"
        or (pod.get("spec") or {}).get("hostNetwork") is True
        or MESH_POD_LABEL in (meta.get("labels") or {})
        or INJECT_TEMPLATES_ANNOTATION in (meta.get("annotations") or {})
    )


def asks_for_sidecar(pod: Mapping[str, Any]) -> bool:
    """`sidecar.istio.io/inject: "true"`: istiod injects it wherever it runs, ambient namespaces included."""
    return _injection_choice(pod) == "true"


def is_captured(pod: Mapping[str, Any]) -> bool:
    """ztunnel captures the pod's traffic, as the CNI node agent records on it."""
    return (metadata_of(pod).get("annotations") or {}).get(CAPTURED_ANNOTATION) == "enabled"


def left_out_of_ambient(pod: Mapping[str, Any]) -> bool:
    """`istio.io/dataplane-mode: none` on the pod: ambient mode leaves it alone."""
    return (metadata_of(pod).get("labels") or {}).get(DATAPLANE_MODE_LABEL) == "none"


def speaks_hbone(pod: Mapping[str, Any]) -> bool:
    """Its `istio-proxy` was injected with the ambient profile's `ISTIO_META_ENABLE_HBONE=true`."""
    for container in (*_containers(pod, "containers"), *_containers(pod, "initContainers")):
        if container.get("name") == SIDECAR_CONTAINER:
            return any(
                isinstance(item, Mapping) and item.get("name") == HBONE_ENV and str(item.get("value")).lower() == "true"
                for item in container.get("env") or []
            )
    return False


def pod_revision(pod: Mapping[str, Any]) -> str | None:
    """The revision that injected the pod, or None when its injector did not say."""
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)
    return str(value) if value else None


def sidecar_image(pod: Mapping[str, Any]) -> str | None:
    """The image of the pod's `istio-proxy` (container or native init container), if it has one."""
    for key in ("containers", "initContainers"):
        for container in _containers(pod, key):
            if container.get("name") == SIDECAR_CONTAINER:
                return str(container.get("image") or "")
    return None


def same_image(running: str, declared: str) -> bool:
    """Whether a pod runs the declared image: digests and Docker Hub's implicit registry do not count.

    `docker.io/istio/proxyv2:1.30.3-distroless@sha256:...` runs `istio/proxyv2:1.30.3-distroless`, not
    `istio/proxyv2:1.30.3`: a variant is another image.
    """

    def canonical(image: str) -> str:
        name = image.split("@", 1)[0]
        for prefix in ("docker.io/", "index.docker.io/"):
            name = name.removeprefix(prefix)
        return name

    return canonical(running) == canonical(declared)


def redirection(pod: Mapping[str, Any]) -> Redirection:
    names = {c.get("name") for c in _containers(pod, "initContainers")}
    if IPTABLES_INIT_CONTAINER in names:
        return Redirection.IPTABLES_INIT
    if CNI_VALIDATION_CONTAINER in names:
        return Redirection.CNI
    return Redirection.NONE


def is_active(pod: Mapping[str, Any]) -> bool:
    """Pods that run or will run: finished pods and pods being deleted are not re-injected."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def is_running(pod: Mapping[str, Any]) -> bool:
    """Running and not being deleted: what a finished rollout leaves, without the old pods on their way out."""
    return is_active(pod) and (pod.get("status") or {}).get("phase") == "Running"


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def ref_of(kind: str, obj: Mapping[str, Any]) -> WorkloadRef:
    meta = metadata_of(obj)
    return WorkloadRef(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for owner in metadata_of(obj).get("ownerReferences") or []:
        if owner.get("controller"):
            found: Mapping[str, Any] = owner
            return found
    return None


def owner_kind(owner: Mapping[str, Any]) -> str:
    """The owner's kind, qualified with its API group unless it is one we handle (`Rollout.argoproj.io`).

    Matching by kind alone would take an OpenKruise `StatefulSet` (group `apps.kruise.io`) for an `apps` one.
    """
    kind = str(owner.get("kind", ""))
    api_version = str(owner.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    if not group or (group, kind) in KNOWN_OWNERS:
        return kind
    return f"{kind}.{group}"


def _deployment_by_hash(pod: Mapping[str, Any], replicaset_name: str) -> str | None:
    """The Deployment a ReplicaSet was named after, when the pod carries the matching template hash."""
    template_hash = str((metadata_of(pod).get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL) or "")
    suffix = f"-{template_hash}"
    if template_hash and replicaset_name.endswith(suffix) and len(replicaset_name) > len(suffix):
        return replicaset_name[: -len(suffix)]
    return None


def resolve_owner(pod: Mapping[str, Any], replicasets: Mapping[tuple[str, str], Mapping[str, Any]]) -> WorkloadRef:
    """The object a pod is recreated through: Pod -> ReplicaSet -> Deployment, or its direct controller.

    Returns the pod itself for a bare pod, the ReplicaSet's own controller when it is not a Deployment
    (an Argo `Rollout.argoproj.io`, reported as unsupported), and the ReplicaSet when nothing controls it.
    A ReplicaSet missing from `replicasets` was created after they were listed (a rollout under way, or
    the one just awaited): the Deployment controller's naming rule names its Deployment, which the caller
    still has to find; without the rule's label it is `MISSING_REPLICASET`, never "without a Deployment".
    """
    namespace = str(metadata_of(pod).get("namespace", ""))
    owner = controller_of(pod)
    if owner is None:
        return ref_of("Pod", pod)
    kind, name = owner_kind(owner), str(owner.get("name", ""))
    if kind != "ReplicaSet":
        return WorkloadRef(kind, namespace, name)
    replicaset = replicasets.get((namespace, name))
    if replicaset is None:
        deployment = _deployment_by_hash(pod, name)
        if deployment is not None:
            return WorkloadRef("Deployment", namespace, deployment)
        return WorkloadRef(MISSING_REPLICASET, namespace, name)
    rs_owner = controller_of(replicaset)
    if rs_owner is None:
        return WorkloadRef("ReplicaSet", namespace, name)
    return WorkloadRef(owner_kind(rs_owner), namespace, str(rs_owner.get("name", "")))


def selector_query(workload: Mapping[str, Any]) -> str:
    """The workload's pod selector as a `labelSelector` query (`app=cart,tier in (web,api),!canary`)."""
    selector = (workload.get("spec") or {}).get("selector") or {}
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(values)})")
        elif operator == "Exists":
            terms.append(str(key))
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def template_annotations(workload: Mapping[str, Any]) -> Mapping[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    return annotations


def is_paused(workload: Mapping[str, Any]) -> bool:
    return bool((workload.get("spec") or {}).get("paused"))


def partition(workload: Mapping[str, Any]) -> int:
    """A StatefulSet's `rollingUpdate.partition`: only pods with an ordinal at or above it are replaced."""
    strategy = (workload.get("spec") or {}).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only what planning reads, so a cluster's worth of pods fits in little memory."""
    meta, spec = metadata_of(pod), pod.get("spec") or {}
    return {
        "metadata": {
            **{key: meta[key] for key in ("name", "namespace", "ownerReferences", "deletionTimestamp") if key in meta},
            "labels": {
                key: value
                for key, value in (meta.get("labels") or {}).items()
                if key in (POD_TEMPLATE_HASH_LABEL, REVISION_LABEL, INJECT_KEY, DATAPLANE_MODE_LABEL, MESH_POD_LABEL)
            },
            "annotations": {
                key: value
                for key, value in (meta.get("annotations") or {}).items()
                if key in (INJECT_KEY, CAPTURED_ANNOTATION, INJECT_TEMPLATES_ANNOTATION)
            },
        },
        "spec": {
            "containers": [_slim_container(c) for c in spec.get("containers") or []],
            "initContainers": [
                {**_slim_container(c), "restartPolicy": c.get("restartPolicy")}
                for c in spec.get("initContainers") or []
            ],
            **({"hostNetwork": True} if spec.get("hostNetwork") is True else {}),
        },
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }


def _slim_container(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's name; the sidecar's image and HBONE setting too (what planning compares)."""
    if container.get("name") == SIDECAR_CONTAINER:
        env = [
            item for item in container.get("env") or [] if isinstance(item, Mapping) and item.get("name") == HBONE_ENV
        ]
        return {"name": container.get("name"), "image": container.get("image"), "env": env}
    return {"name": container.get("name")}


def slim_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what tracing a pod to its owner reads: identity and owners (a ReplicaSet's, to find its Deployment).

    Takes a whole object as well as a PartialObjectMetadata (what a metadata-only list returns).
    """
    meta = metadata_of(obj)
    return {"metadata": {key: meta[key] for key in ("name", "namespace", "ownerReferences") if key in meta}}


def slim_namespace(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keep a namespace's name and the labels that choose its data plane (Istio's)."""
    meta = metadata_of(obj)
    labels = {key: value for key, value in (meta.get("labels") or {}).items() if "istio" in key}
    return {"metadata": {"name": meta.get("name"), "labels": labels}}


def slim_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keep a configuration object's identity and spec (an Istio policy: its spec is what is read)."""
    meta = metadata_of(obj)
    return {
        "metadata": {key: meta[key] for key in ("name", "namespace") if key in meta},
        "spec": obj.get("spec"),
    }


def slim_workload(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what planning and rollout tracking read: identity, owners, pause, strategy, our annotations."""
    meta, spec = metadata_of(obj), obj.get("spec") or {}
    annotations = template_annotations(obj)
    return {
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "ownerReferences", "generation", "resourceVersion")
            if key in meta
        },
        "spec": {
            "replicas": spec.get("replicas"),
            "selector": spec.get("selector"),
            "paused": spec.get("paused"),
            "updateStrategy": spec.get("updateStrategy"),
            "template": {
                "metadata": {
                    "annotations": {
                        key: annotations[key]
                        for key in (FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION)
                        if key in annotations
                    }
                }
            },
        },
        "status": dict(obj.get("status") or {}),
    }
