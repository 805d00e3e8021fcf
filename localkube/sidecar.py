"""What istiod's injector does to a pod, as a JSONPatch: the parts of injection-template.yaml tests look at.

Reference: ../shared/reference/istio-1.30.3/charts/istiod/files/injection-template.yaml, trimmed (fewer env
variables, volumes and probes): pod size is what 2,000-pod tests pay for on every write. The redirection's init
container is `istio-validation` (no added capabilities) when the revision uses the Istio CNI plugin, else
`istio-init` (adds NET_ADMIN and NET_RAW: it writes the pod's iptables itself). Then, as istiod orders them
(pkg/kube/inject `reorderPod`):
- native sidecars (istiod's default on Kubernetes that has them): `istio-proxy` is an init container with
  `restartPolicy: Always`; the redirection's container first, `istio-proxy` second, the pod's own init containers
  after them, so that those already run in the mesh;
- the regular-container form: `istio-proxy` is a container, appended; `istio-validation` moved first (nothing may
  run before the check), `istio-init` last (the pod's own init containers run before iptables redirects them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROXY = "istio-proxy"
VALIDATION = "istio-validation"
INIT = "istio-init"
STATUS_ANNOTATION = "sidecar.istio.io/status"
REVISION_LABEL = "istio.io/rev"
INJECT = "sidecar.istio.io/inject"
NATIVE_SIDECAR = "sidecar.istio.io/nativeSidecar"
_PROXY_UID = 1337

JsonPatch = list[dict[str, Any]]


@dataclass(frozen=True)
class Revision:
    """One istiod control plane: its name and the proxy it injects."""

    name: str
    hub: str = "docker.io/istio"
    tag: str = "1.30.3"
    cni: bool = True
    variant: str | None = None
    native: bool | None = None
    """Whether this istiod injects native sidecars (its ENABLE_NATIVE_SIDECARS); None: the injector's default."""
    hbone: bool = False
    """Whether it injects with the ambient profile's proxy metadata `ISTIO_META_ENABLE_HBONE=true`."""

    @property
    def image(self) -> str:
        return f"{self.hub}/proxyv2:{self.tag}" + (f"-{self.variant}" if self.variant else "")


def pointer_token(key: str) -> str:
    """One JSON-pointer segment (RFC 6901): `~` and `/` are escaped, so `istio.io/rev` becomes `istio.io~1rev`."""
    return key.replace("~", "~0").replace("/", "~1")


def injection_patch(pod: Mapping[str, Any], revision: Revision, *, native: bool = True) -> JsonPatch:
    """The JSONPatch that injects `revision`'s sidecar into `pod` (the object of a pod CREATE review).

    `native`: `istio-proxy` as a native sidecar (an init container with `restartPolicy: Always`), else as a
    regular container.
    """
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    labels, annotations = meta.get("labels"), meta.get("annotations")
    init = _validation_container(revision) if revision.cni else _init_container(revision)
    proxy = _proxy_container(revision)
    volumes = _volumes()
    if native:
        proxy["restartPolicy"] = "Always"
        init_containers, containers = [init, proxy], []
    else:
        init_containers, containers = [init], [proxy]
    status = {
        "initContainers": [container["name"] for container in init_containers],
        # istiod lists the template's containers: none in the native form (Go's nil slice, JSON null).
        "containers": [container["name"] for container in containers] or None,
        "volumes": [volume["name"] for volume in volumes],
        "imagePullSecrets": None,
        "revision": revision.name,
    }
    new_labels = {
        "security.istio.io/tlsMode": (labels or {}).get("security.istio.io/tlsMode", "istio"),
        "service.istio.io/canonical-name": _canonical_name(meta),
        "service.istio.io/canonical-revision": _canonical_revision(labels or {}),
        REVISION_LABEL: revision.name,
    }
    new_annotations: dict[str, str] = {REVISION_LABEL: revision.name}
    app_containers = [container["name"] for container in spec.get("containers", []) if container["name"] != PROXY]
    for key in ("kubectl.kubernetes.io/default-logs-container", "kubectl.kubernetes.io/default-container"):
        if app_containers and key not in (annotations or {}):
            new_annotations[key] = app_containers[0]
    if revision.cni:
        new_annotations["sidecar.istio.io/interceptionMode"] = "REDIRECT"
    new_annotations[STATUS_ANNOTATION] = json.dumps(status, separators=(",", ":"))
    return [
        *_map_ops("/metadata/labels", labels, new_labels),
        *_map_ops("/metadata/annotations", annotations, new_annotations),
        *_list_ops("/spec/initContainers", spec.get("initContainers"), init_containers, first=native or revision.cni),
        *_list_ops("/spec/containers", spec.get("containers"), containers, first=False),
        *_list_ops("/spec/volumes", spec.get("volumes"), volumes, first=False),
    ]


def _map_ops(path: str, current: Mapping[str, str] | None, additions: Mapping[str, str]) -> JsonPatch:
    # A key cannot be added under a map that is absent: add the map whole then.
    if current is None:
        return [{"op": "add", "path": path, "value": dict(additions)}]
    return [{"op": "add", "path": f"{path}/{pointer_token(key)}", "value": value} for key, value in additions.items()]


def _list_ops(path: str, current: Sequence[Any] | None, items: Sequence[Any], *, first: bool) -> JsonPatch:
    if not items:
        return []
    if current is None:
        return [{"op": "add", "path": path, "value": list(items)}]
    if first:
        return [{"op": "add", "path": f"{path}/{index}", "value": item} for index, item in enumerate(items)]
    return [{"op": "add", "path": f"{path}/-", "value": item} for item in items]


def _canonical_name(meta: Mapping[str, Any]) -> str:
    labels = meta.get("labels") or {}
    for key in ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"):
        if labels.get(key):
            return str(labels[key])
    return _workload_name(meta)[:63].rstrip("-")


def _canonical_revision(labels: Mapping[str, str]) -> str:
    for key in ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"):
        if labels.get(key):
            return str(labels[key])
    return "latest"


def _workload_name(meta: Mapping[str, Any]) -> str:
    """The Deployment behind a ReplicaSet's pod, else the controller, else the pod (as istiod derives it)."""
    owners = [owner for owner in meta.get("ownerReferences") or [] if owner.get("controller")]
    if owners:
        owner = owners[0]
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if owner.get("kind") == "ReplicaSet" and template_hash and owner["name"].endswith(f"-{template_hash}"):
            return str(owner["name"][: -len(template_hash) - 1])
        return str(owner["name"])
    return str(meta.get("name") or meta.get("generateName", "").rstrip("-"))


def _iptables_args(cni: bool) -> list[str]:
    args = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", str(_PROXY_UID), "-m", "REDIRECT", "-i", "*"]
    args += ["-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"]
    return [*args, "--run-validation", "--skip-rule-apply"] if cni else args


def _non_root_context() -> dict[str, Any]:
    """What the template gives `istio-proxy` and `istio-validation`: no capabilities, the proxy's own user."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": _PROXY_UID,
        "runAsUser": _PROXY_UID,
        "runAsNonRoot": True,
    }


def _validation_container(revision: Revision) -> dict[str, Any]:
    return {
        "name": VALIDATION,
        "image": revision.image,
        "args": _iptables_args(cni=True),
        "resources": _resources(),
        "securityContext": _non_root_context(),
    }


def _init_container(revision: Revision) -> dict[str, Any]:
    return {
        "name": INIT,
        "image": revision.image,
        "args": _iptables_args(cni=False),
        "resources": _resources(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }


def _proxy_container(revision: Revision) -> dict[str, Any]:
    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    probe = {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15, "failureThreshold": 4}
    return {
        "name": PROXY,
        "image": revision.image,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning"],
        "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
        "env": [
            {"name": "CA_ADDR", "value": f"istiod-{revision.name}.istio-system.svc:15012"},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "INSTANCE_IP", "valueFrom": field("status.podIP")},
            *([{"name": "ISTIO_META_ENABLE_HBONE", "value": "true"}] if revision.hbone else []),
        ],
        "readinessProbe": probe,
        "resources": _resources(),
        "securityContext": _non_root_context(),
        "volumeMounts": [
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    }


def _resources() -> dict[str, Any]:
    return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}


def _volumes() -> list[dict[str, Any]]:
    def downward(path: str) -> dict[str, Any]:
        return {"path": path, "fieldRef": {"fieldPath": f"metadata.{path}"}}

    return [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {"name": "istio-podinfo", "downwardAPI": {"items": [downward("labels"), downward("annotations")]}},
        # istiod projects a service-account token here. Without the ServiceAccount admission plugin pods have no
        # serviceAccountName, and the API server rejects a token projection then.
        {"name": "istio-token", "emptyDir": {"medium": "Memory"}},
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
    ]
