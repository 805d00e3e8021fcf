"""Plays the kubelets of a few nodes: binds pending pods, reports them Running and Ready, ends deletions.

There is no scheduler and no kubelet in the test control plane, so without this every pod stays Pending and
no Deployment ever becomes available. Pods are handled on a thread pool (each pod by one thread at a time,
from its latest state), so that thousands of pods are not served one after the other.

They also play the Istio CNI node agent of ambient mode (the `istio-cni` DaemonSet with `ambient.enabled`, and
ztunnel beside it): as a pod starts, before it is reported Running, a pod that ambient mode captures is annotated
`ambient.istio.io/redirection: enabled`, as the node agent does once ztunnel has taken the pod's traffic over. Which
pods it captures follows the cni chart's `ambient.enablementSelectors` (charts/istio-cni/values.yaml, lines 59-66
in 1.30.3) and the node agent's `PodRedirectionEnabled`:
- the pod is labelled `istio.io/dataplane-mode=ambient`, or its namespace is and the pod is not labelled
  `istio.io/dataplane-mode=none`;
- and the pod has no sidecar (no `sidecar.istio.io/status` annotation: a namespace with both the injection label
  and the ambient label runs sidecars, which the node agent leaves alone), is not on the host network, and is not
  annotated `ambient.istio.io/redirection` already (`disabled` is the older opt-out).
Only pods that start are enrolled: a namespace relabelled while its pods run is not followed (the real agent enrols
and releases running pods live); moving a namespace restarts its workloads anyway.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.binaries import KUBERNETES_VERSION
from localkube.pod_watch import Pod, PodWatch
from localkube.raw import drain, read_json
from localkube.timers import Timers
from localkube.waiting import pod_ready

PodPredicate = Callable[[Pod], bool]
_LOG = logging.getLogger(__name__)
_STRATEGIC = "application/strategic-merge-patch+json"
_MERGE = "application/merge-patch+json"
_RETRY_SECONDS = 0.5
_READY_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
DATAPLANE_MODE = "istio.io/dataplane-mode"
REDIRECTION = "ambient.istio.io/redirection"
_SIDECAR_STATUS = "sidecar.istio.io/status"


class Kubelets:
    """Context manager: creates `count` Ready nodes and plays their kubelets until exit.

    `ready_delay`: seconds from binding to Ready (a pod starting). `deletion_delay`: seconds a deleted pod stays
    terminating before the "kubelet" confirms it (grace period 0, as a kubelet does after its containers stop).
    Pods are passed around as the API's JSON dicts.

    `ambient_capture`: whether the played nodes run ambient mode's node agent (cni with `ambient.enabled`, and
    ztunnel), so that ambient pods are captured as they start. On by default: a namespace labelled ambient is
    what a test asks for only where ambient is installed; set it False to play a cluster whose cni runs without
    ambient (the labels then change nothing). `never_capture` holds back single pods.
    """

    def __init__(
        self,
        configuration: client.Configuration,
        *,
        count: int = 3,
        name_prefix: str = "node",
        ready_delay: float = 0.05,
        deletion_delay: float = 0.0,
        pods_per_node: int = 2500,
        workers: int = 16,
        ambient_capture: bool = True,
    ) -> None:
        configuration = copy.copy(configuration)
        configuration.connection_pool_maxsize = workers + 2  # the workers and the watch share one client
        self._api = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self._api)
        self.nodes = tuple(f"{name_prefix}-{index}" for index in range(count))
        self._node_index = {name: index for index, name in enumerate(self.nodes)}
        self.ready_delay = ready_delay
        self.deletion_delay = deletion_delay
        self._pods_per_node = pods_per_node
        self._workers = workers
        self._lock = threading.Lock()
        self._pods: dict[str, Pod] = {}
        self._dirty: set[str] = set()
        self._busy: set[str] = set()
        self._since: dict[tuple[str, str], float] = {}
        self._holds: dict[int, PodPredicate] = {}
        self._hold_ids = itertools.count()
        self._ambient_capture = ambient_capture
        self._capture_holds: dict[int, PodPredicate] = {}
        self._uncaptured: set[str] = set()
        self._round_robin = itertools.cycle(self.nodes)
        self._ip_counter = itertools.count(1)
        self._stopping = False
        self.errors: list[str] = []
        self._executor: ThreadPoolExecutor | None = None
        self._timers: Timers | None = None
        self._watch: PodWatch | None = None

    def __enter__(self) -> Self:
        try:
            self._register_nodes()
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="kubelet")
            self._timers = Timers("kubelet-timers")
            self._watch = PodWatch(self._core, self._on_event, self._record_error)
            self._watch.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops watching, then lets in-flight API calls finish: call before the API server goes away."""
        with self._lock:
            self._stopping = True
        if self._watch is not None:
            self._watch.stop()
        if self._timers is not None:
            self._timers.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._api.close()

    def never_ready(self, predicate: PodPredicate) -> Callable[[], None]:
        """Pods for which `predicate(pod)` is true are bound but never become Ready (a stuck rollout).

        Returns a function that lifts the hold: the held pods then become Ready as usual.
        """
        with self._lock:
            hold = next(self._hold_ids)
            self._holds[hold] = predicate

        def release() -> None:
            with self._lock:
                self._holds.pop(hold, None)
                uids = list(self._pods)
            for uid in uids:
                self._offer(uid)

        return release

    def release_all(self) -> None:
        """Lifts every `never_ready` and `never_capture` hold (the fixtures call this after each test)."""
        with self._lock:
            self._holds.clear()
            self._capture_holds.clear()
            uids = list(self._pods)
        for uid in uids:
            self._offer(uid)

    @property
    def ambient_capture(self) -> bool:
        """Whether ambient pods are captured as they start; switched on, the pods that started uncaptured meanwhile
        are captured, as a node agent that starts enrols the running pods."""
        return self._ambient_capture

    @ambient_capture.setter
    def ambient_capture(self, enabled: bool) -> None:
        with self._lock:
            self._ambient_capture = enabled
            uids = list(self._uncaptured)
        for uid in uids:
            self._offer(uid)

    def never_capture(self, predicate: PodPredicate) -> Callable[[], None]:
        """Ambient pods for which `predicate(pod)` is true start (and become Ready) without being captured.

        A node agent that fails to enrol them, or a node without ztunnel. Returns a function that lifts the hold:
        the held pods are then captured, as a node agent that recovers enrols the running pods it missed.
        """
        with self._lock:
            hold = next(self._hold_ids)
            self._capture_holds[hold] = predicate

        def release() -> None:
            with self._lock:
                self._capture_holds.pop(hold, None)
                uids = list(self._uncaptured)
            for uid in uids:
                self._offer(uid)

        return release

    def _register_nodes(self) -> None:
        for name in self.nodes:
            try:
                drain(self._core.create_node(_node(name), _preload_content=False))
            except ApiException as exc:
                if exc.status != 409:  # a node of that name is reused: its taints and status are reset below
                    raise
            # Admission (TaintNodesByCondition) taints every new Node not-ready, and the node lifecycle controller
            # that would lift it is not running: DaemonSets would schedule nothing.
            drain(self._core.patch_node(name, {"spec": {"taints": None}}, _content_type=_MERGE, _preload_content=False))
            status = {"status": _node_status(self._node_index[name], self._pods_per_node)}
            drain(self._core.patch_node_status(name, status, _content_type=_STRATEGIC, _preload_content=False))

    # Events are coalesced per pod: a pod is worked on by one thread at a time, always from its latest state.
    def _on_event(self, kind: str, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            with self._lock:
                self._pods.pop(uid, None)
                self._since.pop((uid, "bound"), None)
                self._since.pop((uid, "terminating"), None)
                self._uncaptured.discard(uid)
            return
        with self._lock:
            self._pods[uid] = pod
        self._offer(uid)

    def _offer(self, uid: str) -> None:
        with self._lock:
            if self._stopping or uid not in self._pods or self._executor is None:
                return
            if uid in self._busy:
                self._dirty.add(uid)
                return
            self._busy.add(uid)
            executor = self._executor
        executor.submit(self._work, uid)

    def _work(self, uid: str) -> None:
        while True:
            with self._lock:
                self._dirty.discard(uid)
                pod = self._pods.get(uid)
            if pod is not None:
                try:
                    self._act(pod)
                except ApiException as exc:
                    # Acting on a snapshot: a pod deleted since (its namespace's teardown, say) may refuse a write as
                    # invalid. A real kubelet meets the same race; only a pod that is still there makes it an error.
                    if not (exc.status == 422 and self._going(pod)):
                        self._record_error(f"{_key(pod)}: {exc!r}")
                        self._later(uid, time.monotonic() + _RETRY_SECONDS)
                except Exception as exc:
                    self._record_error(f"{_key(pod)}: {exc!r}")
                    self._later(uid, time.monotonic() + _RETRY_SECONDS)
            with self._lock:
                if uid not in self._dirty:
                    self._busy.discard(uid)
                    return

    def _act(self, pod: Pod) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        uid = meta["uid"]
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            if node in self._node_index and self._due(uid, "terminating", self.deletion_delay):
                self._finish_deletion(pod)
            return
        if not node:
            if spec.get("schedulerName", "default-scheduler") == "default-scheduler":
                self._bind(pod)
            return
        if node not in self._node_index or status.get("phase") in ("Succeeded", "Failed"):
            return
        if pod_ready(pod):
            with self._lock:
                missed = uid in self._uncaptured
            if missed:
                self._capture(pod)
            return
        with self._lock:
            holds = list(self._holds.values())
        if any(hold(pod) for hold in holds):
            return
        if self._due(uid, "bound", self.ready_delay):
            # The CNI plugin runs as the pod's sandbox is set up: a pod is captured before its containers start.
            self._capture(pod)
            self._report_ready(pod, node)

    def _capture(self, pod: Pod) -> None:
        """Annotates the pod as the ambient node agent does, if ambient mode captures it (see the module's doc)."""
        meta, uid = pod["metadata"], pod["metadata"]["uid"]
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        mode = labels.get(DATAPLANE_MODE)
        if (
            mode == "none"
            or REDIRECTION in annotations
            or _SIDECAR_STATUS in annotations
            or pod["spec"].get("hostNetwork")
            or (mode != "ambient" and self._namespace_mode(meta["namespace"]) != "ambient")
        ):
            with self._lock:
                self._uncaptured.discard(uid)
            return
        with self._lock:
            blocked = not self._ambient_capture or any(hold(pod) for hold in self._capture_holds.values())
            if blocked:
                self._uncaptured.add(uid)
                return
        body = {"metadata": {"uid": uid, "annotations": {REDIRECTION: "enabled"}}}
        try:
            drain(
                self._core.patch_namespaced_pod(
                    meta["name"], meta["namespace"], body, _content_type=_MERGE, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        with self._lock:
            self._uncaptured.discard(uid)

    def _going(self, pod: Pod) -> bool:
        """The pod is gone, replaced under its name, or being deleted, as the API server has it now."""
        meta = pod["metadata"]
        try:
            now = read_json(self._core.read_namespaced_pod(meta["name"], meta["namespace"], _preload_content=False))
        except ApiException as exc:
            return exc.status == 404
        return now["metadata"].get("uid") != meta["uid"] or bool(now["metadata"].get("deletionTimestamp"))

    def _namespace_mode(self, namespace: str) -> str | None:
        """The namespace's data-plane label, read as the pod starts: tests relabel namespaces and restart at once."""
        try:
            found = read_json(self._core.read_namespace(namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        mode = (found["metadata"].get("labels") or {}).get(DATAPLANE_MODE)
        return str(mode) if mode is not None else None

    def _due(self, uid: str, phase: str, delay: float) -> bool:
        """True once `delay` seconds have passed since this pod was first seen in `phase`; else re-offers it then."""
        now = time.monotonic()
        with self._lock:
            since = self._since.setdefault((uid, phase), now)
        if now >= since + delay:
            return True
        self._later(uid, since + delay)
        return False

    def _later(self, uid: str, when: float) -> None:
        if self._timers is not None:
            self._timers.call_at(when, lambda: self._offer(uid))

    def _bind(self, pod: Pod) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self._choose_node(pod)},
        }
        try:
            drain(
                self._core.create_namespaced_pod_binding(
                    meta["name"], meta["namespace"], binding, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # deleted meanwhile, or already bound
                raise

    def _choose_node(self, pod: Pod) -> str:
        """The node a DaemonSet pod is pinned to (by node affinity on metadata.name), else the next one in turn."""
        spec = pod["spec"]
        wanted = spec.get("nodeSelector", {}).get("kubernetes.io/hostname")
        if wanted in self._node_index:
            return str(wanted)
        terms = (
            spec.get("affinity", {})
            .get("nodeAffinity", {})
            .get("requiredDuringSchedulingIgnoredDuringExecution", {})
            .get("nodeSelectorTerms", [])
        )
        for term in terms:
            for field in term.get("matchFields", []):
                if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                    return str(field["values"][0])
        with self._lock:
            return next(self._round_robin)

    def _report_ready(self, pod: Pod, node: str) -> None:
        meta = pod["metadata"]
        with self._lock:
            serial = next(self._ip_counter)
        index = self._node_index[node]
        pod_ip = f"10.{100 + index}.{serial // 250 % 250}.{serial % 250 + 2}"
        body = {
            # A UID in the patch is a precondition: a StatefulSet pod re-created under the same name is left alone.
            "metadata": {"uid": meta["uid"]},
            "status": _running_status(pod, pod_ip=pod_ip, host_ip=_node_ip(index)),
        }
        try:
            drain(
                self._core.patch_namespaced_pod_status(
                    meta["name"], meta["namespace"], body, _content_type=_STRATEGIC, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _finish_deletion(self, pod: Pod) -> None:
        meta = pod["metadata"]
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            drain(
                self._core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], body=options, grace_period_seconds=0, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a new pod under that name
                raise

    def _record_error(self, message: str) -> None:
        _LOG.warning("kubelets: %s", message)
        with self._lock:
            self.errors.append(message)


def _key(pod: Pod) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _running_status(pod: Pod, pod_ip: str, host_ip: str) -> dict[str, Any]:
    """What a kubelet reports once every init container exited 0 and every container runs and passes readiness."""
    now = _now()
    spec = pod["spec"]

    def ids(container: dict[str, Any]) -> dict[str, str]:
        return {
            "image": container.get("image", ""),
            "imageID": f"docker-pullable://{container.get('image', '')}",
            "containerID": f"containerd://{uuid.uuid4().hex}",
        }

    return {
        "phase": "Running",
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": now, "lastProbeTime": None}
            for kind in _READY_CONDITIONS
        ],
        # A native sidecar (`restartPolicy: Always`) keeps running beside the containers; the others have exited.
        "initContainerStatuses": [
            {
                "name": container["name"],
                **ids(container),
                "ready": True,
                "restartCount": 0,
                **(
                    {"started": True, "state": {"running": {"startedAt": now}}}
                    if container.get("restartPolicy") == "Always"
                    else {
                        "started": False,
                        "state": {
                            "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
                        },
                    }
                ),
            }
            for container in spec.get("initContainers", [])
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                **ids(container),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for container in spec.get("containers", [])
        ],
    }


def _node_ip(index: int) -> str:
    return f"10.240.0.{index + 4}"


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "Standard_D4s_v5",
            },
        },
        "spec": {},
    }


def _node_status(index: int, pods: int) -> dict[str, Any]:
    now = _now()
    resources = {"cpu": "2000", "memory": "4000Gi", "pods": str(pods), "ephemeral-storage": "1000Gi"}
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status (played by the tests)",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "addresses": [{"type": "InternalIP", "address": _node_ip(index)}],
        "nodeInfo": {
            "machineID": f"{index:032x}",
            "systemUUID": f"{index:032x}",
            "bootID": f"{index:032x}",
            "kernelVersion": "5.15.0",
            "osImage": "Ubuntu 22.04",
            "containerRuntimeVersion": "containerd://1.7.0",
            "kubeletVersion": KUBERNETES_VERSION,
            "kubeProxyVersion": KUBERNETES_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }
