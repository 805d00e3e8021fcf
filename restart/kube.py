"""The Kubernetes side of the restart: one API client per run, with the retry and error rules every request shares.

Imported only inside the provider's methods: the `kubernetes` client is heavy, and the provider module
must import fast wherever the engine's provider host loads it.

Every request is retried with backoff on 429 (honouring Retry-After, in seconds or as an HTTP date),
5xx and dropped connections; lists are paginated with continue tokens (restarted when one expires);
watches resume from a resourceVersion and report 410 Gone so the caller can list again.

Lists cost what the caller needs, not what the cluster holds, as informers and `kubectl get` make them: a label
selector leaves out objects on the server, `metadata_only` asks for PartialObjectMetadata (no spec, no status), and
`from_cache` (resourceVersion "0") lets the API server answer from its watch cache instead of reading etcd.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as kube_watch

from restart.credentials import api_server, client_configuration
from restart.objects import WorkloadRef, slim_metadata, slim_namespace, slim_pod, slim_spec, slim_workload
from restart.request import RestartError

# The client's helpers carry no type hints; typed aliases keep the strict type check meaningful here.
_iter_lines: Callable[[Any], Iterator[str]] = kube_watch.iter_resp_lines

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
PATCH_CONTENT_TYPE = "application/strategic-merge-patch+json"
FIELD_MANAGER = "aks-istio-restart"
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"
"""What client-go's metadata client asks for: each item's metadata alone; whole objects from a server that cannot."""
ANY_CACHED_VERSION = "0"
"""resourceVersion "0": any version the API server has, answered from its watch cache (what informers list with)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """Tries per request, the first included."""
    base_delay: float = 0.5
    """First backoff in seconds, doubled on each retry (with jitter)."""
    max_delay: float = 30.0
    """Ceiling of one wait, Retry-After included, so that a run always ends."""
    request_timeout: float = 60.0
    """Read timeout of one request (watches use their window instead)."""
    watch_window: float = 10.0
    """Longest a watch request stays open before it is renewed; a failure elsewhere is noticed within it."""


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    api: str
    """`core`, `apps` or `custom`: which client API object serves it."""
    list_method: str
    patch_method: str | None = None
    namespaced_list_method: str | None = None
    read_method: str | None = None
    group: str = ""
    """A custom resource's API group (`security.istio.io`); the built-in kinds' clients know theirs."""
    version: str = ""
    """A custom resource's API version (`v1`)."""
    namespaced: bool = True


def _custom(kind: str, plural: str, group: str, version: str) -> Kind:
    """A namespaced custom resource, served by `CustomObjectsApi` (its methods take the group, version and plural)."""
    return Kind(
        kind,
        plural,
        "custom",
        "list_cluster_custom_object",
        namespaced_list_method="list_namespaced_custom_object",
        group=group,
        version=version,
    )


KINDS: dict[str, Kind] = {
    "Pod": Kind("Pod", "pods", "core", "list_pod_for_all_namespaces", namespaced_list_method="list_namespaced_pod"),
    "ReplicaSet": Kind("ReplicaSet", "replicasets", "apps", "list_replica_set_for_all_namespaces"),
    "Deployment": Kind(
        "Deployment", "deployments", "apps", "list_deployment_for_all_namespaces", "patch_namespaced_deployment"
    ),
    "StatefulSet": Kind(
        "StatefulSet", "statefulsets", "apps", "list_stateful_set_for_all_namespaces", "patch_namespaced_stateful_set"
    ),
    "DaemonSet": Kind(
        "DaemonSet", "daemonsets", "apps", "list_daemon_set_for_all_namespaces", "patch_namespaced_daemon_set"
    ),
}

ISTIO_KINDS: dict[str, Kind] = {
    "AuthorizationPolicy": _custom("AuthorizationPolicy", "authorizationpolicies", "security.istio.io", "v1"),
    "PeerAuthentication": _custom("PeerAuthentication", "peerauthentications", "security.istio.io", "v1"),
    "EnvoyFilter": _custom("EnvoyFilter", "envoyfilters", "networking.istio.io", "v1alpha3"),
    "VirtualService": _custom("VirtualService", "virtualservices", "networking.istio.io", "v1"),
    "DestinationRule": _custom("DestinationRule", "destinationrules", "networking.istio.io", "v1"),
}
"""The Istio policy objects ambient mode's migration reads, at the versions Istio serves them (v1 since 1.22;
EnvoyFilter only ever as v1alpha3)."""
NAMESPACE = Kind("Namespace", "namespaces", "core", "list_namespace", read_method="read_namespace", namespaced=False)


class WatchHandle:
    """Lets another thread end a watch at once, instead of after its window: shutting its socket wakes the read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self._closed = False

    def attach(self, response: Any) -> bool:
        """Keep the watch's response; False when the handle is closed already (the watch must not start)."""
        with self._lock:
            self._response = None if self._closed else response
            return not self._closed

    def detach(self) -> None:
        with self._lock:
            self._response = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            response, self._response = self._response, None
            if response is not None:
                with contextlib.suppress(ValueError, RuntimeError, OSError):
                    response.shutdown()  # refused once the response is closed or back in the pool: then it is over


class GoneError(Exception):
    """HTTP 410: a continue token or a watch's resourceVersion has expired; start over from a fresh list."""


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    resource_version: str


class Cluster:
    """One API client for one run, with the retry and error rules every request shares."""

    def __init__(self, api_client: Any, server: str, retry: RetryPolicy, page_size: int) -> None:
        self._apis = {
            "core": client.CoreV1Api(api_client),
            "apps": client.AppsV1Api(api_client),
            "custom": client.CustomObjectsApi(api_client),
        }
        self._server = api_server(server)
        self._retry = retry
        self._page_size = page_size

    def _method(self, kind: Kind, name: str) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self._apis[kind.api], name)
        if kind.api == "custom":
            return functools.partial(method, group=kind.group, version=kind.version, plural=kind.plural)
        return method

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self._retry.max_delay, self._retry.base_delay * 2**attempt)
        return delay * random.uniform(0.5, 1.0)

    def _retry_after(self, exc: ApiException) -> float | None:
        value = (exc.headers or {}).get("Retry-After")
        seconds = _retry_after_seconds(value) if value is not None else None
        return min(self._retry.max_delay, max(0.0, seconds)) if seconds is not None else None

    def request(self, verb: str, kind: Kind, namespace: str | None, call: Callable[[], Any]) -> Any:
        """Run `call` (which returns an unread HTTP response) with retries; return the decoded JSON body."""
        last_error: Exception | None = None
        for attempt in range(self._retry.attempts):
            try:
                response = call()
                try:
                    return json.loads(response.data)
                except ValueError:
                    raise RestartError(f"the answer to {verb} {kind.plural} is not JSON") from None
                finally:
                    response.release_conn()
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUSES:
                    raise self._failure(verb, kind, namespace, exc) from exc
                last_error, delay = exc, self._retry_after(exc)
                if delay is None:
                    delay = self._backoff(attempt)
            except urllib3.exceptions.HTTPError as exc:
                last_error, delay = exc, self._backoff(attempt)
            if attempt + 1 < self._retry.attempts:
                time.sleep(delay)
        raise self._exhausted(verb, kind, namespace, last_error) from last_error

    def _where(self, kind: Kind, namespace: str | None) -> str:
        if not kind.namespaced:
            return "the cluster"
        return f"namespace {namespace!r}" if namespace else "all namespaces"

    def _failure(self, verb: str, kind: Kind, namespace: str | None, exc: ApiException) -> Exception:
        message = _status_message(exc)
        if exc.status == 410:
            return GoneError(message)
        if exc.status == 403:
            return RestartError(f"forbidden: cannot {verb} {kind.plural} in {self._where(kind, namespace)}: {message}")
        if exc.status == 401:
            return RestartError(
                f"{self._server} rejected the kubeconfig's credentials (401 Unauthorized) to {verb} {kind.plural}"
            )
        return RestartError(
            f"{verb} {kind.plural} in {self._where(kind, namespace)} failed: HTTP {exc.status}: {message}"
        )

    def _exhausted(self, verb: str, kind: Kind, namespace: str | None, exc: Exception | None) -> RestartError:
        attempts = self._retry.attempts
        if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return RestartError(f"{self._server} is unreachable ({attempts} attempts, {type(exc).__name__})")
        if isinstance(exc, ApiException):
            detail = f"HTTP {exc.status}: {_status_message(exc)}"
        else:
            detail = f"connection to {self._server} failed ({type(exc).__name__})"
        return RestartError(
            f"gave up to {verb} {kind.plural} in {self._where(kind, namespace)} after {attempts} attempts: {detail}"
        )

    def list_all(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        metadata_only: bool = False,
        from_cache: bool = False,
        absent_kind_is_empty: bool = False,
    ) -> Listing:
        """Every object of a kind, cluster-wide or in one namespace, page by page; restarted if the token expires.

        `metadata_only`: each object's metadata alone (PartialObjectMetadata). `from_cache`: served from the API
        server's watch cache, possibly a moment behind etcd; only the first page asks for it, since a continue token
        carries the version its list is read at. `absent_kind_is_empty`: a 404 (the API server does not serve the
        kind: its CRD is not installed) reads as no objects.
        """
        scope: dict[str, Any] = {}
        if namespace is not None:
            assert kind.namespaced_list_method is not None
            method = self._method(kind, kind.namespaced_list_method)
            scope["namespace"] = namespace
        else:
            method = self._method(kind, kind.list_method)
        if label_selector:
            scope["label_selector"] = label_selector
        slim: Callable[[Mapping[str, Any]], dict[str, Any]]
        if metadata_only:
            scope["_headers"] = {"Accept": METADATA_LIST_ACCEPT}
            slim = slim_metadata
        elif kind.api == "custom":
            slim = slim_spec
        elif kind.kind == "Namespace":
            slim = slim_namespace
        else:
            slim = slim_pod if kind.kind == "Pod" else slim_workload
        for _ in range(3):
            items: list[dict[str, Any]] = []
            resource_version, token = "", None
            try:
                while True:
                    page_scope = {"_continue": token} if token else {}
                    if from_cache and not token:
                        page_scope["resource_version"] = ANY_CACHED_VERSION
                    page = self.request(
                        "list",
                        kind,
                        namespace,
                        functools.partial(
                            method,
                            **scope,
                            **page_scope,
                            limit=self._page_size,
                            _preload_content=False,
                            _request_timeout=self._retry.request_timeout,
                        ),
                    )
                    items.extend(slim(item) for item in page.get("items") or [])
                    metadata = page.get("metadata") or {}
                    resource_version = resource_version or str(metadata.get("resourceVersion") or "")
                    token = metadata.get("continue")
                    if not token:
                        return Listing(items, resource_version)
            except GoneError:
                continue
            except RestartError as exc:
                if absent_kind_is_empty and _not_found(exc):
                    return Listing([], "")
                raise
        raise RestartError(f"list {kind.plural}: the continue token kept expiring")

    def read(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object by its name, or None when there is none."""
        assert kind.read_method is not None
        scope = {"namespace": namespace} if kind.namespaced else {}
        return self._unless_gone(
            "get",
            kind,
            namespace,
            functools.partial(
                self._method(kind, kind.read_method),
                name=name,
                **scope,
                _preload_content=False,
                _request_timeout=self._retry.request_timeout,
            ),
        )

    def patch(self, ref: WorkloadRef, body: dict[str, Any]) -> dict[str, Any] | None:
        """One PATCH; the patched object, or None when it was deleted since it was listed."""
        kind = KINDS[ref.kind]
        assert kind.patch_method is not None
        method = self._method(kind, kind.patch_method)
        return self._unless_gone(
            "patch",
            kind,
            ref.namespace,
            functools.partial(
                method,
                name=ref.name,
                namespace=ref.namespace,
                body=body,
                field_manager=FIELD_MANAGER,
                _content_type=PATCH_CONTENT_TYPE,
                _preload_content=False,
                _request_timeout=self._retry.request_timeout,
            ),
        )

    def _unless_gone(
        self, verb: str, kind: Kind, namespace: str | None, call: Callable[[], Any]
    ) -> dict[str, Any] | None:
        """`request`'s answer, or None when the object is not there (404)."""
        try:
            answer: dict[str, Any] = self.request(verb, kind, namespace, call)
        except RestartError as exc:
            if _not_found(exc):
                return None
            raise
        return answer

    def watch(
        self, kind: Kind, resource_version: str, seconds: float, handle: WatchHandle | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events of a kind, cluster-wide, from `resource_version` for at most `seconds`; raises GoneError on 410.

        Closing `handle` ends the watch at once (its read raises, or the events end).
        """
        method = self._method(kind, kind.list_method)
        try:
            response = method(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, int(seconds)),
                _preload_content=False,
                _request_timeout=(self._retry.request_timeout, seconds + 5),
            )
        except ApiException as exc:
            if exc.status in RETRYABLE_STATUSES:
                raise urllib3.exceptions.HTTPError(f"watch {kind.plural}: HTTP {exc.status}") from exc
            raise self._failure("watch", kind, None, exc) from exc
        try:
            if handle is not None and not handle.attach(response):
                return
            for line in _iter_lines(response):
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise GoneError(str(status.get("message", "")))
                    raise RestartError(f"watch {kind.plural} failed: {status.get('message', status)}")
                yield event
        finally:
            if handle is not None:
                handle.detach()
            response.release_conn()
            response.close()


def _not_found(exc: RestartError) -> bool:
    """The request was answered 404 (`request` chains the client's error)."""
    return isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404


def _retry_after_seconds(value: str) -> float | None:
    """Retry-After is either a number of seconds or an HTTP date (RFC 9110)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()


def _status_message(exc: ApiException) -> str:
    """The `message` of a Kubernetes Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "")


@contextlib.contextmanager
def connect(kubeconfig: str, retry: RetryPolicy, page_size: int, pool_size: int) -> Iterator[Cluster]:
    """A fresh client for this run only: no global configuration, certificates in a private temp dir."""
    with tempfile.TemporaryDirectory(prefix="aks-istio-kube-") as cert_dir:
        configuration = client_configuration(kubeconfig, cert_dir)
        # Retries are ours: urllib3's would repeat requests behind our back and not honour Retry-After.
        configuration.retries = False
        configuration.connection_pool_maxsize = pool_size
        api_client: Any = client.ApiClient(configuration)
        try:
            yield Cluster(api_client, str(configuration.host), retry, page_size)
        finally:
            api_client.close()
