"""A small Kubernetes API server emulator on 127.0.0.1, for `tests/restart/test_kube.py`.

The restart is proved on the real control plane (`localkube/`); this emulator exists only for what
that cannot show, or cannot show on cue:
- native sidecars (`istio-proxy` as an init container with `restartPolicy: Always`): the v1.24 API server
  drops the field;
- races between two requests of one run: an object deleted, or pods re-injected by a rollout, between them;
- server latency, and errors in the middle of a watch (an `ERROR` 410 once the history is compacted).

It serves, over real HTTP and behind a bearer token, so the official client is exercised as against a cluster:
- lists of pods, replicasets, deployments, statefulsets and daemonsets, cluster-wide or namespaced, cut at
  `limit` (never continued: pagination is proved on the real control plane), with equality `labelSelector`s;
- PATCH (merge / strategic-merge on maps) of one object; a template change bumps `generation`;
- cluster-wide watches from a resourceVersion, chunked, ended by `timeoutSeconds`;
- a controller that completes a rollout after a delay (status and, optionally, re-injected pods: a Deployment
  gets a new ReplicaSet and new pods while the old ones are left terminating), or stalls it;
- a request log and injected faults (garbled bodies, objects deleted just before a request, actions run first).
"""

from __future__ import annotations

import bisect
import copy
import heapq
import itertools
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GROUPS = {
    "pods": ("", "v1", "Pod"),
    "replicasets": ("apps", "apps/v1", "ReplicaSet"),
    "deployments": ("apps", "apps/v1", "Deployment"),
    "statefulsets": ("apps", "apps/v1", "StatefulSet"),
    "daemonsets": ("apps", "apps/v1", "DaemonSet"),
}
WORKLOAD_PLURALS = {"deployments", "statefulsets", "daemonsets"}
PLURAL_OF_KIND = {kind: plural for plural, (_, _, kind) in GROUPS.items()}


@dataclass
class Fault:
    """Applies to the next request that matches, once."""

    method: str
    path_contains: str = ""
    watch: bool | None = None
    body: bytes | None = None
    """Answer 200 with this body instead."""
    delete_object: bool = False
    """Delete the addressed object first (it vanished between the list and this request)."""
    action: Callable[[], None] | None = None
    """Run first, e.g. `emulator.compact` so that a watch finds its resourceVersion expired."""

    def matches(self, method: str, path: str, watch: bool) -> bool:
        return self.method == method and self.path_contains in path and (self.watch is None or self.watch == watch)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    verb: str
    """Kubernetes verb: list, watch, patch."""


@dataclass(frozen=True)
class _Route:
    plural: str
    namespace: str | None
    name: str | None


def _parse_path(path: str) -> _Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:3] == ["apis", "apps", "v1"]:
        rest = parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in GROUPS or len(rest) > 2:
        return None
    expected_prefix = "api" if GROUPS[rest[0]][0] == "" else "apis"
    if parts[0] != expected_prefix:
        return None
    return _Route(rest[0], namespace, rest[1] if len(rest) == 2 else None)


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7386); enough of strategic merge for patches of maps such as annotations."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _labels_match(obj: Mapping[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.rstrip("!=")) != value.lstrip("="):
            return False
    return True


class KubeEmulator:
    def __init__(self, *, rollout_delay: float = 0.05, reinject: str | None = None) -> None:
        self.token = "emulator-token"
        self.latency = 0.0
        """Seconds added to every request, as a network round trip to a real API server would."""
        self.rollout_delay = rollout_delay
        self.reinject = reinject
        """When set (`istio-init` or `istio-validation`), a finished rollout re-injects the workload's pods."""
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {plural: {} for plural in GROUPS}
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.max_in_flight: Counter[str] = Counter()
        """Most requests of each HTTP method being served at once."""
        self._in_flight: Counter[str] = Counter()
        self._stalled: set[tuple[str, str, str]] = set()
        self._hashes = itertools.count(0x7B0000)
        self._events: dict[str, list[tuple[int, str, dict[str, Any]]]] = {plural: [] for plural in GROUPS}
        self._oldest_watchable = 0
        self._rv = itertools.count(1000)
        self._last_rv = 999
        self._state = threading.Condition()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._timer_wakeup = threading.Condition()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
            threading.Thread(target=self._run_timers, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        with self._timer_wakeup:
            self._stopping = True
            self._timer_wakeup.notify_all()
        with self._state:
            self._state.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the emulator first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self) -> str:
        return kubeconfig_for(self.url, self.token)

    # -- state -------------------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._last_rv = next(self._rv)
        return self._last_rv

    def _record(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        """With the state lock held: stamp a new resourceVersion and publish the event."""
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._events[plural].append((rv, kind, copy.deepcopy(obj)))
        self._state.notify_all()

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        if plural in WORKLOAD_PLURALS or plural == "replicasets":
            meta.setdefault("generation", 1)
        with self._state:
            self.objects[plural][(meta["namespace"], meta["name"])] = obj
            self._record(plural, "ADDED", obj)
        return obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._state:
            found = self.objects[plural].get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self._state:
            obj = self.objects[plural].pop((namespace, name), None)
            if obj is not None:
                self._record(plural, "DELETED", obj)

    def compact(self) -> None:
        """Forget the event history, as etcd compaction does: older watches get 410 Gone."""
        with self._state:
            self._oldest_watchable = self._last_rv
            for events in self._events.values():
                events.clear()

    def stall(self, plural: str, namespace: str, name: str) -> None:
        """This workload's rollouts never finish."""
        self._stalled.add((plural, namespace, name))

    def unstall(self, plural: str, namespace: str, name: str) -> None:
        """Let this workload's pending rollout finish now, as a controller that got unstuck would."""
        self._stalled.discard((plural, namespace, name))
        obj = self.get(plural, namespace, name)
        if obj is not None:
            self._complete_rollout(plural, namespace, name, obj["metadata"]["generation"])

    def count(self, method: str | None = None, verb: str | None = None) -> int:
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method) and (verb is None or r.verb == verb)
        )

    # -- controller ----------------------------------------------------------------------------------

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        with self._timer_wakeup:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), action))
            self._timer_wakeup.notify_all()

    def _run_timers(self) -> None:
        while True:
            with self._timer_wakeup:
                while not self._stopping and (not self._timers or self._timers[0][0] > time.monotonic()):
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timer_wakeup.wait(timeout)
                if self._stopping:
                    return
                _, _, action = heapq.heappop(self._timers)
            action()

    def _complete_rollout(self, plural: str, namespace: str, name: str, generation: int) -> None:
        if (plural, namespace, name) in self._stalled:
            return
        with self._state:
            obj = self.objects[plural].get((namespace, name))
            if obj is None or obj["metadata"].get("generation") != generation:
                return
            spec, status = obj["spec"], obj.setdefault("status", {})
            status["observedGeneration"] = generation
            if plural == "statefulsets":
                status["currentRevision"] = status["updateRevision"] = f"{name}-{generation}"
            if plural == "daemonsets":
                desired = status.get("desiredNumberScheduled", 0)
                status.update(currentNumberScheduled=desired, updatedNumberScheduled=desired, numberAvailable=desired)
                status["numberReady"] = desired
            else:
                replicas = spec.get("replicas", 1)
                status.update(replicas=replicas, updatedReplicas=replicas, readyReplicas=replicas)
                status["availableReplicas"] = replicas
            self._record(plural, "MODIFIED", obj)
            if self.reinject:
                self._reinject_pods(GROUPS[plural][2], namespace, name)

    def _reinject_pods(self, kind: str, namespace: str, name: str) -> None:
        """With the state lock held: the pods a finished rollout leaves, injected for `self.reinject`."""
        if kind == "Deployment":
            self._replace_replicaset(namespace, name)
            return
        for (ns, _), pod in self.objects["pods"].items():
            if ns == namespace and _controller(pod) == (kind, name):
                self._reinject(pod)
                self._record("pods", "MODIFIED", pod)

    def _reinject(self, pod: dict[str, Any]) -> None:
        for container in pod["spec"].get("initContainers") or []:
            if container["name"] in ("istio-init", "istio-validation"):
                container["name"] = self.reinject

    def _replace_replicaset(self, namespace: str, name: str) -> None:
        """As the Deployment controller does: a new ReplicaSet with new pods; the old pods are terminating."""
        deployment = self.objects["deployments"][(namespace, name)]
        old_sets = {
            ("ReplicaSet", rs_name)
            for (ns, rs_name), rs in self.objects["replicasets"].items()
            if ns == namespace and _controller(rs) == ("Deployment", name)
        }
        old_pods = [
            pod
            for (ns, _), pod in self.objects["pods"].items()
            if ns == namespace and _controller(pod) in old_sets and not pod["metadata"].get("deletionTimestamp")
        ]
        template_hash = f"{next(self._hashes):06x}"
        replicaset = _replicaset_of(deployment, template_hash)
        self.objects["replicasets"][(namespace, replicaset["metadata"]["name"])] = replicaset
        self._record("replicasets", "ADDED", replicaset)
        for index in range(replicaset["spec"]["replicas"] if old_pods else 0):
            pod = copy.deepcopy(old_pods[0])
            pod["metadata"] = _pod_meta(namespace, replicaset["metadata"]["name"], index, template_hash)
            pod["metadata"]["ownerReferences"] = [_owner("ReplicaSet", replicaset)]
            self._reinject(pod)
            self.objects["pods"][(namespace, pod["metadata"]["name"])] = pod
            self._record("pods", "ADDED", pod)
        for pod in old_pods:
            pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:30Z"
            self._record("pods", "MODIFIED", pod)

    # -- request handling --------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str, watch: bool) -> Fault | None:
        with self._state:
            for fault in self.faults:
                if fault.matches(method, path, watch):
                    self.faults.remove(fault)
                    return fault
        return None

    def list_objects(self, route: _Route, params: Mapping[str, str]) -> bytes:
        """A list cut at `limit`, serialized while the state is locked (serializing is the copy)."""
        limit = int(params.get("limit") or 0)
        selector = params.get("labelSelector", "")
        with self._state:
            keys = sorted(
                key
                for key, obj in self.objects[route.plural].items()
                if (route.namespace is None or key[0] == route.namespace) and _labels_match(obj, selector)
            )
            _, api_version, kind = GROUPS[route.plural]
            items = [self.objects[route.plural][key] for key in (keys[:limit] if limit else keys)]
            metadata = {"resourceVersion": str(self._last_rv)}
            body = {"kind": f"{kind}List", "apiVersion": api_version, "metadata": metadata, "items": items}
            return json.dumps(body).encode()

    def patch_object(self, route: _Route, patch: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Apply a patch; a change of the spec bumps `generation` and starts a rollout."""
        assert route.namespace is not None and route.name is not None
        with self._state:
            obj = self.objects[route.plural].get((route.namespace, route.name))
            if obj is None:
                return 404, _status(404, "NotFound", f'{route.plural} "{route.name}" not found')
            before = json.dumps(obj.get("spec"), sort_keys=True)
            _merge(obj, patch)
            changed = json.dumps(obj.get("spec"), sort_keys=True) != before
            if changed:
                obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
            self._record(route.plural, "MODIFIED", obj)
            result = copy.deepcopy(obj)
        if changed and route.plural in WORKLOAD_PLURALS and not result["spec"].get("paused"):
            generation = result["metadata"]["generation"]
            self._schedule(
                self.rollout_delay,
                lambda: self._complete_rollout(route.plural, route.namespace or "", route.name or "", generation),
            )
        return 200, result

    def watch_events(self, route: _Route, params: Mapping[str, str], write: Callable[[dict[str, Any]], None]) -> None:
        """The events after `resourceVersion`, cluster-wide; an `ERROR` 410 if it is older than the history."""
        deadline = time.monotonic() + float(params.get("timeoutSeconds") or 1800)
        cursor = int(params.get("resourceVersion") or 0)
        with self._state:
            expired = cursor < self._oldest_watchable
        if expired:
            write({"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {cursor}")})
            return
        while True:
            with self._state:
                events = self._events[route.plural]
                start = bisect.bisect_right(events, cursor, key=lambda event: event[0])
                if start == len(events):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return
                    self._state.wait(min(remaining, 0.5))
                    continue
                fresh = events[start:]
                cursor = events[-1][0]
            for _, kind, obj in fresh:
                write({"type": kind, "object": obj})


def kubeconfig_for(server: str, token: str) -> str:
    """A kubeconfig document for `server` over plain HTTP with a bearer token."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": server}}],
            "users": [{"name": "emulator", "user": {"token": token}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
            "current-context": "emulator",
        },
        indent=2,
    )


def _controller(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner["kind"], owner["name"]
    return None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (a closed pool) is not an emulator error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the client's delayed ACK
    # would add some 40 ms to every response, far more than the latency a test sets on purpose.
    disable_nagle_algorithm = True
    emulator: KubeEmulator

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator's request log is `KubeEmulator.requests`."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send_json(self, code: int, body: Mapping[str, Any]) -> None:
        self._send_bytes(code, json.dumps(body).encode())

    def _send_bytes(self, code: int, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        emulator = self.emulator
        url = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "PATCH" else b""
        watch = params.get("watch") in ("true", "1")
        verb = "patch" if method == "PATCH" else "watch" if watch else "list"
        with emulator._state:
            emulator.requests.append(LoggedRequest(method, url.path, verb))
            emulator._in_flight[method] += 1
            emulator.max_in_flight[method] = max(emulator.max_in_flight[method], emulator._in_flight[method])
        try:
            self._serve(method, url.path, params, body, watch)
        finally:
            with emulator._state:
                emulator._in_flight[method] -= 1

    def _serve(self, method: str, path: str, params: Mapping[str, str], body: bytes, watch: bool) -> None:
        emulator = self.emulator
        if emulator.latency:
            time.sleep(emulator.latency)
        # Without this check, a kubeconfig whose credential never reaches the server would pass for one that does.
        if self.headers.get("Authorization") != f"Bearer {emulator.token}":
            self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        route = _parse_path(path)
        # Served: lists and watches (no name), PATCHes (one named object).
        if route is None or (route.name is None) == (method == "PATCH"):
            self._send_json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        fault = emulator._take_fault(method, path, watch)
        if fault is not None:
            if fault.action is not None:
                fault.action()
            if fault.delete_object and route.namespace and route.name:
                emulator.delete(route.plural, route.namespace, route.name)
            if fault.body is not None:
                self._send_bytes(200, fault.body)
                return
        if method == "PATCH":
            self._send_json(*emulator.patch_object(route, json.loads(body or b"{}")))
        elif watch:
            self._stream_watch(route, params)
        else:
            self._send_bytes(200, emulator.list_objects(route, params))

    def _stream_watch(self, route: _Route, params: Mapping[str, str]) -> None:
        """Chunked watch events."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(event: dict[str, Any]) -> None:
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        try:
            self.emulator.watch_events(route, params, write)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# -- object builders -------------------------------------------------------------------------------

ISTIO_PROXY_IMAGE = "docker.io/istio/proxyv2:1.30.3"


def pod_template_spec(
    app: str, *, sidecar: bool = True, redirect: str | None = "istio-init", native: bool = False
) -> dict[str, Any]:
    """A pod spec as istiod injects it: see the injection template for the two redirection modes."""
    containers: list[dict[str, Any]] = [{"name": app, "image": f"example.com/{app}:1"}]
    init: list[dict[str, Any]] = []
    if sidecar:
        if redirect == "istio-init":
            init.append(
                {
                    "name": "istio-init",
                    "image": ISTIO_PROXY_IMAGE,
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                }
            )
        elif redirect == "istio-validation":
            init.append({"name": "istio-validation", "image": ISTIO_PROXY_IMAGE})
        proxy: dict[str, Any] = {"name": "istio-proxy", "image": ISTIO_PROXY_IMAGE}
        if native:
            init.append({**proxy, "restartPolicy": "Always"})
        else:
            containers.append(proxy)
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return spec


def _owner(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUPS[PLURAL_OF_KIND[kind]][1],
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod_meta(namespace: str, base: str, index: int, template_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": base} if template_hash is None else {"app": base, "pod-template-hash": template_hash}
    return {"name": f"{base}-{index}", "namespace": namespace, "labels": labels, "uid": str(uuid.uuid4())}


def _add_pods(
    emulator: KubeEmulator,
    namespace: str,
    base: str,
    count: int,
    owner: dict[str, Any] | None,
    spec: dict[str, Any],
    template_hash: str | None = None,
) -> None:
    for index in range(count):
        meta = _pod_meta(namespace, base, index, template_hash)
        if owner is not None:
            meta["ownerReferences"] = [owner]
        emulator.add("pods", {"metadata": meta, "spec": copy.deepcopy(spec), "status": {"phase": "Running"}})


def _replicaset_of(deployment: Mapping[str, Any], template_hash: str) -> dict[str, Any]:
    """The ReplicaSet the Deployment controller makes: named `<deployment>-<hash>`, owned by the Deployment."""
    name, namespace = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
    replicas = deployment["spec"].get("replicas", 1)
    labels = {"app": name, "pod-template-hash": template_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{template_hash}",
            "namespace": namespace,
            "labels": labels,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [_owner("Deployment", deployment)],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


@dataclass(frozen=True)
class PodShape:
    sidecar: bool = True
    redirect: str | None = "istio-init"
    native: bool = False

    def spec(self, app: str) -> dict[str, Any]:
        return pod_template_spec(app, sidecar=self.sidecar, redirect=self.redirect, native=self.native)


def _workload(kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    template: dict[str, Any] = {"metadata": {"labels": labels}, "spec": pod_template_spec(name, sidecar=False)}
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "generation": 1},
        "spec": spec,
    }


def add_deployment(
    emulator: KubeEmulator,
    namespace: str,
    name: str,
    shape: PodShape = PodShape(),
    *,
    replicas: int = 1,
    paused: bool = False,
) -> dict[str, Any]:
    """A Deployment, its ReplicaSet and `replicas` running pods of the given shape."""
    deployment = _workload("Deployment", namespace, name, replicas)
    deployment["spec"]["paused"] = paused
    deployment["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    emulator.add("deployments", deployment)
    replicaset = emulator.add("replicasets", _replicaset_of(deployment, "5d8f7c"))
    owner = _owner("ReplicaSet", replicaset)
    _add_pods(emulator, namespace, f"{name}-5d8f7c", replicas, owner, shape.spec(name), template_hash="5d8f7c")
    return deployment


def add_statefulset(
    emulator: KubeEmulator, namespace: str, name: str, shape: PodShape = PodShape(), *, on_delete: bool = False
) -> dict[str, Any]:
    """A StatefulSet of one running pod of the given shape."""
    statefulset = _workload("StatefulSet", namespace, name, 1)
    statefulset["spec"]["serviceName"] = name
    statefulset["spec"]["updateStrategy"] = {"type": "OnDelete" if on_delete else "RollingUpdate"}
    statefulset["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "currentReplicas": 1,
        "currentRevision": f"{name}-1",
        "updateRevision": f"{name}-1",
    }
    emulator.add("statefulsets", statefulset)
    _add_pods(emulator, namespace, name, 1, _owner("StatefulSet", statefulset), shape.spec(name))
    return statefulset


def add_daemonset(emulator: KubeEmulator, namespace: str, name: str) -> dict[str, Any]:
    """A DaemonSet on two nodes, with sidecar-injected (`istio-init`) pods."""
    daemonset = _workload("DaemonSet", namespace, name, 0)
    daemonset["spec"]["updateStrategy"] = {"type": "RollingUpdate"}
    daemonset["status"] = {
        "observedGeneration": 1,
        "currentNumberScheduled": 2,
        "desiredNumberScheduled": 2,
        "numberMisscheduled": 0,
        "numberReady": 2,
        "numberAvailable": 2,
        "updatedNumberScheduled": 2,
    }
    emulator.add("daemonsets", daemonset)
    _add_pods(emulator, namespace, name, 2, _owner("DaemonSet", daemonset), pod_template_spec(name))
    return daemonset


def add_bare_pod(emulator: KubeEmulator, namespace: str, name: str) -> None:
    """A sidecar-injected (`istio-init`) pod that no controller owns."""
    _add_pods(emulator, namespace, name, 1, None, pod_template_spec(name))


def add_job_pod(emulator: KubeEmulator, namespace: str, job: str) -> None:
    """A sidecar-injected (`istio-init`) pod owned by a Job."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": str(uuid.uuid4()), "controller": True}
    _add_pods(emulator, namespace, job, 1, owner, pod_template_spec(job))


def add_orphan_replicaset(emulator: KubeEmulator, namespace: str, name: str) -> None:
    """A ReplicaSet that no Deployment owns, with one sidecar-injected (`istio-init`) pod."""
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}},
        "status": {"replicas": 1},
    }
    emulator.add("replicasets", replicaset)
    _add_pods(emulator, namespace, name, 1, _owner("ReplicaSet", replicaset), pod_template_spec(name))


__all__ = [
    "Fault",
    "KubeEmulator",
    "PodShape",
    "add_bare_pod",
    "add_daemonset",
    "add_deployment",
    "add_job_pod",
    "add_orphan_replicaset",
    "add_statefulset",
    "kubeconfig_for",
    "pod_template_spec",
]
