"""A small Kubernetes API server emulator on 127.0.0.1, for the sidecar restart tests and benchmark.

It serves what the restart uses, over real HTTP, so the official client is exercised as against a cluster:
- cluster-wide and namespaced lists of pods, replicasets, deployments, statefulsets and daemonsets, with
  `limit`/`continue` pagination and equality `labelSelector`s;
- GET and PATCH (merge / strategic-merge on maps) of one object; a template change bumps `generation`;
- watches from a resourceVersion (`ERROR` 410 once compacted), chunked, ended by `timeoutSeconds`;
- a controller that completes a rollout (status and, optionally, re-injected pods: a Deployment gets a new
  ReplicaSet and new pods while the old ones are left terminating) after a delay, or stalls it, or fails
  it with `ProgressDeadlineExceeded`;
- bearer-token authentication, a request log, added latency and injected faults (status codes with
  Retry-After in seconds or as an HTTP date, dropped connections, before or after a PATCH is applied or
  in the middle of a watch, garbled bodies, objects deleted just before a request, 403 by
  verb/resource/namespace).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import heapq
import itertools
import json
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    """Applies to the next `times` requests that match (`times=-1`: to all of them)."""

    method: str = "*"
    path_contains: str = ""
    query_contains: str = ""
    namespace: str | None = None
    watch: bool | None = None
    status: int | None = None
    retry_after: float | None = None
    retry_after_header: str | None = None
    """A Retry-After value sent as is (an HTTP date, say)."""
    message: str = "injected fault"
    drop: bool = False
    """Close the connection without answering."""
    drop_after_apply: bool = False
    """Apply the PATCH, then close the connection without answering: the client cannot tell it was applied."""
    drop_after_events: int | None = None
    """Send this many watch events, then close the connection in the middle of the stream."""
    body: bytes | None = None
    """Answer 200 with this body instead."""
    delete_object: bool = False
    """Delete the addressed object first (it vanished between the list and this request)."""
    action: Callable[[], None] | None = None
    """Run first, e.g. `emulator.compact` so that a watch finds its resourceVersion expired."""
    times: int = 1

    def matches(self, method: str, path: str, query: str, namespace: str | None, watch: bool) -> bool:
        return (
            self.times != 0
            and self.method in ("*", method)
            and self.path_contains in path
            and self.query_contains in query
            and (self.namespace is None or self.namespace == namespace)
            and (self.watch is None or self.watch == watch)
        )


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    verb: str
    """Kubernetes verb: list, watch, get, patch."""
    resource: str
    content_type: str | None


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
    def __init__(
        self,
        *,
        token: str = "emulator-token",
        latency: float = 0.0,
        rollout_delay: float = 0.05,
        reinject: str | None = None,
    ) -> None:
        self.token = token
        self.latency = latency
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
        self._deadline_exceeded: set[tuple[str, str, str]] = set()
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

    def kubeconfig(self, token: str | None = None) -> str:
        return kubeconfig_for(self.url, token or self.token)

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

    def exceed_progress_deadline(self, namespace: str, name: str) -> None:
        """This Deployment's rollouts end with `Progressing: False, ProgressDeadlineExceeded`."""
        self._deadline_exceeded.add(("deployments", namespace, name))

    def forbid(self, verb: str, plural: str, namespace: str | None = None) -> None:
        """Answer 403 to every `verb` on `plural` (in `namespace`, or anywhere)."""
        method = {"patch": "PATCH"}.get(verb, "GET")
        group = GROUPS[plural][0]
        resource = f"{plural}.{group}" if group else plural
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        message = (
            f'{resource} is forbidden: User "system:serviceaccount:ci:deployer" cannot {verb} resource '
            f'"{plural}" in API group "{group}"{where}'
        )
        self.faults.append(
            Fault(
                method=method,
                path_contains=f"/{plural}",
                namespace=namespace,
                watch=(verb == "watch") if method == "GET" else None,
                status=403,
                message=message,
                times=-1,
            )
        )

    def count(self, method: str | None = None, verb: str | None = None, resource: str | None = None) -> int:
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method)
            and (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
        )

    def request_counts(self) -> Counter[str]:
        return Counter(f"{r.verb} {r.resource}" for r in list(self.requests))

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
            if (plural, namespace, name) in self._deadline_exceeded:
                status["conditions"] = [_progress_deadline_exceeded(name)]
                status["updatedReplicas"] = 0
                self._record(plural, "MODIFIED", obj)
                return
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

    def _take_fault(self, method: str, path: str, query: str, namespace: str | None, watch: bool) -> Fault | None:
        with self._state:
            for fault in self.faults:
                if fault.matches(method, path, query, namespace, watch):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def list_objects(self, route: _Route, params: Mapping[str, str]) -> bytes:
        """One page of a list, serialized while the state is locked (serializing is the copy)."""
        limit = int(params.get("limit") or 0)
        selector = params.get("labelSelector", "")
        with self._state:
            if params.get("continue"):
                token = json.loads(base64.urlsafe_b64decode(params["continue"]))
                after, rv = tuple(token["after"]), token["rv"]
            else:
                after, rv = None, self._last_rv
            keys = sorted(
                key
                for key, obj in self.objects[route.plural].items()
                if (route.namespace is None or key[0] == route.namespace)
                and (after is None or key > after)
                and _labels_match(obj, selector)
            )
            page = keys[:limit] if limit else keys
            _, api_version, kind = GROUPS[route.plural]
            metadata: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and len(keys) > limit:
                token = {"after": list(page[-1]), "rv": rv}
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
                metadata["remainingItemCount"] = len(keys) - limit
            items = [self.objects[route.plural][key] for key in page]
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
        paused = bool(result["spec"].get("paused"))
        if changed and route.plural in WORKLOAD_PLURALS and not paused:
            generation = result["metadata"]["generation"]
            self._schedule(
                self.rollout_delay,
                lambda: self._complete_rollout(route.plural, route.namespace or "", route.name or "", generation),
            )
        return 200, result

    def watch_events(self, route: _Route, params: Mapping[str, str], write: Callable[[dict[str, Any]], None]) -> None:
        deadline = time.monotonic() + float(params.get("timeoutSeconds") or 1800)
        raw_rv = params.get("resourceVersion") or "0"
        with self._state:
            if raw_rv == "0":
                cursor = self._last_rv
                initial = [
                    {"type": "ADDED", "object": copy.deepcopy(obj)}
                    for key, obj in sorted(self.objects[route.plural].items())
                    if route.namespace is None or key[0] == route.namespace
                ]
            elif int(raw_rv) < self._oldest_watchable:
                initial = [{"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {raw_rv}")}]
                cursor = -1
            else:
                cursor, initial = int(raw_rv), []
        for event in initial:
            write(event)
        if cursor < 0:
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
                fresh = [
                    (rv, kind, obj)
                    for rv, kind, obj in events[start:]
                    if route.namespace is None or obj["metadata"]["namespace"] == route.namespace
                ]
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


def _progress_deadline_exceeded(name: str) -> dict[str, Any]:
    return {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": f'ReplicaSet "{name}-7b0000" has timed out progressing.',
    }


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
        """A client that goes away (a dropped-connection test, a closed pool) is not an emulator error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the client's delayed ACK
    # would add some 40 ms to every response, far more than the latency the benchmark sets on purpose.
    disable_nagle_algorithm = True
    emulator: KubeEmulator

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator's request log is `KubeEmulator.requests`."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send_json(self, code: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(code, json.dumps(body).encode(), headers)

    def _send_bytes(self, code: int, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, method: str) -> None:
        emulator = self.emulator
        url = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "PATCH" else b""
        route = _parse_path(url.path)
        watch = params.get("watch") in ("true", "1")
        verb = "patch" if method == "PATCH" else "watch" if watch else "get" if route and route.name else "list"
        logged = LoggedRequest(
            method, url.path, url.query, verb, route.plural if route else url.path, self.headers.get("Content-Type")
        )
        with emulator._state:
            emulator.requests.append(logged)
            emulator._in_flight[method] += 1
            emulator.max_in_flight[method] = max(emulator.max_in_flight[method], emulator._in_flight[method])
        try:
            self._serve(method, url.path, url.query, params, body, route, watch)
        finally:
            with emulator._state:
                emulator._in_flight[method] -= 1

    def _serve(
        self,
        method: str,
        path: str,
        query: str,
        params: Mapping[str, str],
        body: bytes,
        route: _Route | None,
        watch: bool,
    ) -> None:
        emulator = self.emulator
        if emulator.latency:
            time.sleep(emulator.latency)
        if self.headers.get("Authorization") != f"Bearer {emulator.token}":
            self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        if route is None:
            self._send_json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        fault = emulator._take_fault(method, path, query, route.namespace, watch)
        if fault is not None:
            if fault.action is not None:
                fault.action()
            if fault.delete_object and route.namespace and route.name:
                emulator.delete(route.plural, route.namespace, route.name)
            if fault.drop:
                self._drop()
                return
            if fault.body is not None:
                self._send_bytes(200, fault.body)
                return
            if fault.drop_after_apply and method == "PATCH" and route.name is not None:
                emulator.patch_object(route, json.loads(body or b"{}"))
                self._drop()
                return
            if fault.drop_after_events is not None and watch:
                self._stream_watch(route, params, drop_after=fault.drop_after_events)
                return
            if fault.status is not None:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                if fault.retry_after_header is not None:
                    headers = {"Retry-After": fault.retry_after_header}
                reason = {403: "Forbidden", 410: "Expired", 429: "TooManyRequests"}.get(fault.status, "InternalError")
                self._send_json(fault.status, _status(fault.status, reason, fault.message), headers)
                return
        if method == "PATCH":
            if route.name is None or route.plural not in WORKLOAD_PLURALS:
                self._send_json(405, _status(405, "MethodNotAllowed", "PATCH is served for workloads only"))
                return
            code, result = emulator.patch_object(route, json.loads(body or b"{}"))
            self._send_json(code, result)
        elif watch:
            self._stream_watch(route, params)
        elif route.name is not None:
            found = emulator.get(route.plural, route.namespace or "", route.name)
            if found is None:
                self._send_json(404, _status(404, "NotFound", f'{route.plural} "{route.name}" not found'))
            else:
                self._send_json(200, found)
        else:
            self._send_bytes(200, emulator.list_objects(route, params))

    def _stream_watch(self, route: _Route, params: Mapping[str, str], drop_after: int | None = None) -> None:
        """Chunked watch events; with `drop_after`, the connection is cut after that many, mid-stream."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0

        def write(event: dict[str, Any]) -> None:
            nonlocal sent
            if drop_after is not None and sent >= drop_after:
                raise _StreamCutError
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
            sent += 1

        try:
            self.emulator.watch_events(route, params, write)
            self.wfile.write(b"0\r\n\r\n")
        except _StreamCutError:
            self._drop()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _StreamCutError(Exception):
    """Raised inside a watch stream to cut the connection there."""


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


def _workload(
    kind: str, namespace: str, name: str, replicas: int, template_annotations: Mapping[str, str] | None
) -> dict[str, Any]:
    labels = {"app": name}
    template: dict[str, Any] = {"metadata": {"labels": labels}, "spec": pod_template_spec(name, sidecar=False)}
    if template_annotations:
        template["metadata"]["annotations"] = dict(template_annotations)
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
    template_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment, its ReplicaSet and `replicas` running pods of the given shape."""
    deployment = _workload("Deployment", namespace, name, replicas, template_annotations)
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
    emulator: KubeEmulator,
    namespace: str,
    name: str,
    shape: PodShape = PodShape(),
    *,
    replicas: int = 1,
    on_delete: bool = False,
    partition: int = 0,
) -> dict[str, Any]:
    statefulset = _workload("StatefulSet", namespace, name, replicas, None)
    statefulset["spec"]["serviceName"] = name
    strategy: dict[str, Any] = {"type": "OnDelete" if on_delete else "RollingUpdate"}
    if partition:
        strategy["rollingUpdate"] = {"partition": partition}
    statefulset["spec"]["updateStrategy"] = strategy
    statefulset["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "currentReplicas": replicas,
        "currentRevision": f"{name}-1",
        "updateRevision": f"{name}-1",
    }
    emulator.add("statefulsets", statefulset)
    _add_pods(emulator, namespace, name, replicas, _owner("StatefulSet", statefulset), shape.spec(name))
    return statefulset


def add_daemonset(
    emulator: KubeEmulator, namespace: str, name: str, shape: PodShape = PodShape(), *, nodes: int = 2
) -> dict[str, Any]:
    daemonset = _workload("DaemonSet", namespace, name, 0, None)
    daemonset["spec"]["updateStrategy"] = {"type": "RollingUpdate"}
    daemonset["status"] = {
        "observedGeneration": 1,
        "currentNumberScheduled": nodes,
        "desiredNumberScheduled": nodes,
        "numberMisscheduled": 0,
        "numberReady": nodes,
        "numberAvailable": nodes,
        "updatedNumberScheduled": nodes,
    }
    emulator.add("daemonsets", daemonset)
    _add_pods(emulator, namespace, name, nodes, _owner("DaemonSet", daemonset), shape.spec(name))
    return daemonset


def add_bare_pod(emulator: KubeEmulator, namespace: str, name: str, shape: PodShape = PodShape()) -> None:
    _add_pods(emulator, namespace, name, 1, None, shape.spec(name))


def add_job_pod(emulator: KubeEmulator, namespace: str, job: str, shape: PodShape = PodShape()) -> None:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": str(uuid.uuid4()), "controller": True}
    _add_pods(emulator, namespace, job, 1, owner, shape.spec(job))


def add_orphan_replicaset(emulator: KubeEmulator, namespace: str, name: str, shape: PodShape = PodShape()) -> None:
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}},
        "status": {"replicas": 1},
    }
    emulator.add("replicasets", replicaset)
    _add_pods(emulator, namespace, name, 1, _owner("ReplicaSet", replicaset), shape.spec(name))


def names(refs: Iterable[str]) -> list[str]:
    """`Kind/namespace/name` strings sorted, for comparisons in tests."""
    return sorted(refs)


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
    "field",
]
