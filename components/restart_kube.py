"""The Kubernetes side of the sidecar restart: list the cluster, plan, patch, and wait for the rollouts.

Imported only inside the provider's methods: the `kubernetes` client is heavy, and the provider module
must import fast wherever the engine's provider host loads it.

Requests made for one run, whatever the cluster's size:
- one paginated, cluster-wide list per kind (pods, replicasets, deployments, statefulsets, daemonsets),
  run side by side;
- exactly one PATCH per workload restarted, at most `max_concurrent` in flight;
- with `wait_for_rollout`, one watch per restarted kind, started from the list's resourceVersion so that
  no status change after the patches can be missed (renewed every `watch_window` seconds, so that a
  failure of another kind's watch is noticed promptly), then one more paginated list of pods to check
  that the new pods carry the wanted redirection.
Every request is retried with backoff on 429 (honouring Retry-After), 5xx and dropped connections.
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as kube_watch

from components.restart_plan import (
    RestartPlan,
    SkipReason,
    WorkloadRef,
    desired_redirection,
    group_by_reason,
    mismatched_pods,
    name_list,
    plan_restart,
    ref_of,
    restart_patch,
    rfc3339,
    rollout_complete,
    rollout_failure,
    slim_pod,
    slim_workload,
)

Progress = Callable[[str], None]

# The client's helpers carry no type hints; typed aliases keep the strict type check meaningful here.
_iter_lines: Callable[[Any], Iterator[str]] = kube_watch.iter_resp_lines
_load_kubeconfig: Callable[..., None] = config.load_kube_config_from_dict

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
PATCH_CONTENT_TYPE = "application/strategic-merge-patch+json"
FIELD_MANAGER = "aks-istio-restart"
"""Names this program in the patched objects' `managedFields`, so a reader can tell who set the annotations."""


@dataclass(frozen=True)
class RestartRequest:
    kubeconfig: str = field(repr=False)
    cni_enabled: bool
    exclude_namespaces: tuple[str, ...]
    max_concurrent: int = 10
    wait_for_rollout: bool = True
    timeout_seconds: int = 600


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
class RestartOutcome:
    fingerprint: str
    restarted_at: str
    restarted: tuple[str, ...]
    skipped: dict[str, list[str]]
    manual_restart: dict[str, list[str]]


class RestartError(RuntimeError):
    """The restart could not finish; `restarted` lists what this run restarted before it stopped."""

    def __init__(self, message: str, restarted: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.restarted = restarted


@dataclass(frozen=True)
class _Kind:
    kind: str
    plural: str
    api: str
    """`core` or `apps`: which client API object serves it."""
    list_method: str
    patch_method: str | None = None


KINDS: dict[str, _Kind] = {
    "Pod": _Kind("Pod", "pods", "core", "list_pod_for_all_namespaces"),
    "ReplicaSet": _Kind("ReplicaSet", "replicasets", "apps", "list_replica_set_for_all_namespaces"),
    "Deployment": _Kind(
        "Deployment", "deployments", "apps", "list_deployment_for_all_namespaces", "patch_namespaced_deployment"
    ),
    "StatefulSet": _Kind(
        "StatefulSet", "statefulsets", "apps", "list_stateful_set_for_all_namespaces", "patch_namespaced_stateful_set"
    ),
    "DaemonSet": _Kind(
        "DaemonSet", "daemonsets", "apps", "list_daemon_set_for_all_namespaces", "patch_namespaced_daemon_set"
    ),
}


class _GoneError(Exception):
    """HTTP 410: a continue token or a watch's resourceVersion has expired; start over from a fresh list."""


@dataclass(frozen=True)
class _Listing:
    items: list[dict[str, Any]]
    resource_version: str


class _Cluster:
    """One API client for one run, with the retry and error rules every request shares."""

    def __init__(self, api_client: Any, server: str, retry: RetryPolicy, page_size: int) -> None:
        self._apis = {"core": client.CoreV1Api(api_client), "apps": client.AppsV1Api(api_client)}
        self._server = server
        self._retry = retry
        self._page_size = page_size

    def _method(self, kind: _Kind, name: str) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self._apis[kind.api], name)
        return method

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self._retry.max_delay, self._retry.base_delay * 2**attempt)
        return delay * random.uniform(0.5, 1.0)

    def _retry_after(self, exc: ApiException) -> float | None:
        value = (exc.headers or {}).get("Retry-After")
        seconds = _retry_after_seconds(value) if value is not None else None
        return min(self._retry.max_delay, max(0.0, seconds)) if seconds is not None else None

    def request(self, verb: str, kind: _Kind, namespace: str | None, call: Callable[[], Any]) -> Any:
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

    def _where(self, namespace: str | None) -> str:
        return f"namespace {namespace!r}" if namespace else "all namespaces"

    def _failure(self, verb: str, kind: _Kind, namespace: str | None, exc: ApiException) -> Exception:
        message = _status_message(exc)
        if exc.status == 410:
            return _GoneError(message)
        if exc.status == 403:
            return RestartError(f"forbidden: cannot {verb} {kind.plural} in {self._where(namespace)}: {message}")
        if exc.status == 401:
            return RestartError(
                f"the API server at {self._server} rejected the kubeconfig's credentials "
                f"(401 Unauthorized) to {verb} {kind.plural}"
            )
        return RestartError(f"{verb} {kind.plural} in {self._where(namespace)} failed: HTTP {exc.status}: {message}")

    def _exhausted(self, verb: str, kind: _Kind, namespace: str | None, exc: Exception | None) -> RestartError:
        attempts = self._retry.attempts
        if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return RestartError(
                f"the Kubernetes API server at {self._server} is unreachable ({attempts} attempts): {exc}"
            )
        if isinstance(exc, ApiException):
            detail = f"HTTP {exc.status}: {_status_message(exc)}"
        else:
            detail = f"connection to {self._server} failed: {exc}"
        return RestartError(
            f"gave up to {verb} {kind.plural} in {self._where(namespace)} after {attempts} attempts: {detail}"
        )

    def list_all(self, kind: _Kind) -> _Listing:
        """Every object of a kind, cluster-wide, page by page; restarted once if the continue token expires."""
        method = self._method(kind, kind.list_method)
        slim = slim_pod if kind.kind == "Pod" else slim_workload
        for _ in range(3):
            items: list[dict[str, Any]] = []
            resource_version, token = "", None
            try:
                while True:
                    page = self.request(
                        "list",
                        kind,
                        None,
                        functools.partial(
                            method,
                            limit=self._page_size,
                            _continue=token,
                            _preload_content=False,
                            _request_timeout=self._retry.request_timeout,
                        ),
                    )
                    items.extend(slim(item) for item in page.get("items") or [])
                    metadata = page.get("metadata") or {}
                    resource_version = resource_version or str(metadata.get("resourceVersion") or "")
                    token = metadata.get("continue")
                    if not token:
                        return _Listing(items, resource_version)
            except _GoneError:
                continue
        raise RestartError(f"list {kind.plural}: the continue token kept expiring")

    def patch(self, ref: WorkloadRef, body: dict[str, Any]) -> dict[str, Any] | None:
        """One PATCH; the patched object, or None when it was deleted since it was listed."""
        kind = KINDS[ref.kind]
        assert kind.patch_method is not None
        method = self._method(kind, kind.patch_method)
        try:
            patched: dict[str, Any] = self.request(
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
        except RestartError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404:
                return None
            raise
        return patched

    def watch(self, kind: _Kind, resource_version: str, seconds: float) -> Iterator[dict[str, Any]]:
        """Events of a kind, cluster-wide, from `resource_version` for at most `seconds`; raises _GoneError on 410."""
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
            for line in _iter_lines(response):
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise _GoneError(str(status.get("message", "")))
                    raise RestartError(f"watch {kind.plural} failed: {status.get('message', status)}")
                yield event
        finally:
            response.release_conn()
            response.close()


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


def _credentials_expire(kubeconfig: Mapping[str, Any]) -> bool:
    """Whether the current context's user gets short-lived tokens (an exec plugin such as kubelogin)."""
    contexts = {c.get("name"): c.get("context") or {} for c in kubeconfig.get("contexts") or []}
    user_name = contexts.get(kubeconfig.get("current-context"), {}).get("user")
    users = {u.get("name"): u.get("user") or {} for u in kubeconfig.get("users") or []}
    user = users.get(user_name, {})
    return "exec" in user or "auth-provider" in user


@contextlib.contextmanager
def _connect(kubeconfig: str, retry: RetryPolicy, page_size: int, pool_size: int) -> Iterator[_Cluster]:
    """A fresh client for this run only: no global configuration, certificates in a private temp dir."""
    try:
        loaded = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        # The parser's message quotes the offending text, which may hold credentials: leave it out.
        raise RestartError("the kubeconfig is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise RestartError("the kubeconfig is not a mapping")
    with tempfile.TemporaryDirectory(prefix="aks-istio-kube-") as cert_dir:
        configuration = client.Configuration()
        try:
            _load_kubeconfig(loaded, client_configuration=configuration, persist_config=False, temp_file_path=cert_dir)
        except Exception as exc:
            # Only the type: the loader's messages quote parts of the document.
            raise RestartError(f"the kubeconfig cannot be used: {type(exc).__name__}") from None
        if not configuration.host:
            raise RestartError("the kubeconfig names no API server for its current context")
        if not _credentials_expire(loaded):
            # The client reloads the whole kubeconfig before every request, for tokens that expire; with
            # a static token or certificate that is a third of each PATCH's CPU for nothing.
            configuration.refresh_api_key_hook = None
        # Retries are ours: urllib3's would repeat requests behind our back and not honour Retry-After.
        configuration.retries = False
        configuration.connection_pool_maxsize = pool_size
        api_client: Any = client.ApiClient(configuration)
        try:
            yield _Cluster(api_client, str(configuration.host), retry, page_size)
        finally:
            api_client.close()


class _Reporter:
    """Thread-safe "n of m" progress, one line per tenth of the way (and always the last)."""

    def __init__(self, progress: Progress, total: int, verb: str) -> None:
        self._progress, self._total, self._verb = progress, total, verb
        self._done = 0
        self._step = max(1, total // 10)
        self._lock = threading.Lock()

    def advance(self) -> None:
        with self._lock:
            self._done += 1
            if self._done % self._step == 0 or self._done == self._total:
                self._progress(f"{self._done} of {self._total} {self._verb}")


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _list_cluster(cluster: _Cluster) -> dict[str, _Listing]:
    # Side by side, not one after the other: pods and ReplicaSets are the biggest lists. A pod whose
    # ReplicaSet was created after the ReplicaSets were listed is still traced to its Deployment
    # (see `resolve_owner`).
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(cluster.list_all, spec) for kind, spec in KINDS.items()}
        return {kind: future.result() for kind, future in futures.items()}


def _plan(request: RestartRequest, listings: Mapping[str, _Listing]) -> RestartPlan:
    return plan_restart(
        pods=listings["Pod"].items,
        replicasets=listings["ReplicaSet"].items,
        workloads=[(kind, obj) for kind in WORKLOAD_KINDS for obj in listings[kind].items],
        cni_enabled=request.cni_enabled,
        exclude_namespaces=request.exclude_namespaces,
    )


class _NotStarted:
    """A PATCH left out because another one failed first."""


_NOT_STARTED = _NotStarted()


def _restart_all(
    cluster: _Cluster, targets: tuple[WorkloadRef, ...], body: dict[str, Any], max_concurrent: int, progress: Progress
) -> tuple[dict[WorkloadRef, int], list[WorkloadRef]]:
    """PATCH every target, at most `max_concurrent` at once; the generations produced, and those found deleted.

    On the first failure no further PATCH starts; the ones in flight finish, so what was restarted is known.
    """
    generations: dict[WorkloadRef, int] = {}
    deleted: list[WorkloadRef] = []
    failure: BaseException | None = None
    stop = threading.Event()

    def patch_unless_stopped(ref: WorkloadRef) -> dict[str, Any] | _NotStarted | None:
        # Checked in the worker itself: a queued PATCH must not start once another one has failed.
        if stop.is_set():
            return _NOT_STARTED
        try:
            return cluster.patch(ref, body)
        except Exception:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="restart") as pool:
        futures: dict[Future[dict[str, Any] | _NotStarted | None], WorkloadRef] = {
            pool.submit(patch_unless_stopped, ref): ref for ref in targets
        }
        for future in as_completed(futures):
            ref = futures[future]
            try:
                patched = future.result()
            except Exception as exc:
                failure = failure or exc
                continue
            if isinstance(patched, _NotStarted):
                continue
            if patched is None:
                deleted.append(ref)
                continue
            generations[ref] = int((patched.get("metadata") or {}).get("generation") or 0)
            # One line per workload: if the run fails later, the log still names everything it restarted.
            progress(f"restarted {ref} ({len(generations)} of {len(targets)})")
    if failure is not None:
        done = tuple(str(ref) for ref in sorted(generations))
        names = f" ({name_list(done)})" if done else ""
        raise RestartError(
            f"restarted {len(done)} of {len(targets)} workloads{names}, then failed: {failure}. "
            "The restarts are recorded on the workloads: a re-run restarts only the others.",
            done,
        ) from failure
    return generations, deleted


def _await_kind(
    cluster: _Cluster,
    kind: _Kind,
    targets: Mapping[WorkloadRef, int],
    listing: _Listing,
    deadline: float,
    retry: RetryPolicy,
    reporter: _Reporter,
    stop: threading.Event,
) -> set[WorkloadRef]:
    """Follow one kind's watch until every target has rolled out, the deadline passes or `stop` is set.

    Returns the unfinished targets; raises RestartError as soon as a rollout fails for good.
    """
    remaining = dict(targets)

    def settle(ref: WorkloadRef, obj: Mapping[str, Any] | None) -> None:
        if ref not in remaining:
            return
        # Failure first, as kubectl checks it: a timed-out Deployment may still report old replicas as ready.
        if obj is not None and (reason := rollout_failure(kind.kind, obj, remaining[ref])) is not None:
            raise RestartError(f"the rollout of {ref} failed: {reason}")
        if obj is None or rollout_complete(kind.kind, obj, remaining[ref]):
            del remaining[ref]
            reporter.advance()

    def settle_from(objects: Iterable[Mapping[str, Any]]) -> None:
        listed = {ref_of(kind.kind, obj): obj for obj in objects}
        for ref in list(remaining):
            settle(ref, listed.get(ref))

    # A workload restarted by an earlier run may have finished (or failed) before this run's list.
    settle_from(listing.items)
    resource_version, failures = listing.resource_version, 0
    while remaining and not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        try:
            for event in cluster.watch(kind, resource_version, min(retry.watch_window, left)):
                obj = event.get("object") or {}
                resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                if event.get("type") != "BOOKMARK":
                    settle(ref_of(kind.kind, obj), None if event.get("type") == "DELETED" else obj)
                if not remaining or stop.is_set():
                    break
            failures = 0
        except _GoneError:
            # The watch fell too far behind: a fresh list tells the current state and where to resume.
            fresh = cluster.list_all(kind)
            settle_from(fresh.items)
            resource_version = fresh.resource_version
        except urllib3.exceptions.HTTPError:
            failures += 1
            if failures >= retry.attempts:
                raise
            time.sleep(min(retry.max_delay, retry.base_delay * 2**failures, max(0.0, deadline - time.monotonic())))
    return set(remaining)


def _wait_for_rollouts(
    cluster: _Cluster,
    targets: Mapping[WorkloadRef, int],
    listings: Mapping[str, _Listing],
    timeout_seconds: int,
    retry: RetryPolicy,
    progress: Progress,
) -> None:
    """Wait for every target's rollout (to at least its generation), one watcher per kind side by side.

    The first watcher to fail stops the others (at their next event or window's end), so a 403 on one
    kind fails the run promptly instead of after the timeout.
    """
    deadline = time.monotonic() + timeout_seconds
    reporter = _Reporter(progress, len(targets), "rolled out")
    stop = threading.Event()
    by_kind: dict[str, dict[WorkloadRef, int]] = {}
    for ref, generation in targets.items():
        by_kind.setdefault(ref.kind, {})[ref] = generation
    unfinished: list[WorkloadRef] = []
    with ThreadPoolExecutor(max_workers=max(1, len(by_kind)), thread_name_prefix="rollout") as pool:
        futures = [
            pool.submit(_await_kind, cluster, KINDS[kind], kinds, listings[kind], deadline, retry, reporter, stop)
            for kind, kinds in by_kind.items()
        ]
        try:
            for future in as_completed(futures):
                unfinished.extend(future.result())
        finally:
            stop.set()
    if unfinished:
        raise RestartError(
            f"{len(unfinished)} of {len(targets)} rollouts did not finish within {timeout_seconds} s: "
            f"{name_list(sorted(unfinished))}"
        )


def _verify_pods(
    cluster: _Cluster, owners: Mapping[WorkloadRef, int], listings: Mapping[str, _Listing], cni_enabled: bool
) -> None:
    """Once the rollouts finished: fail if any of their running pods still has the old redirection.

    That happens when istiod had not loaded the new injection setting yet when the pods were created.
    """
    left = mismatched_pods(
        pods=cluster.list_all(KINDS["Pod"]).items,
        replicasets=listings["ReplicaSet"].items,
        owners=owners,
        cni_enabled=cni_enabled,
    )
    if not left:
        return
    wanted = desired_redirection(cni_enabled)
    described = name_list(f"{owner} (pods {name_list(pods, limit=3)})" for owner, pods in left.items())
    raise RestartError(
        f"the rollouts finished, but {len(left)} workloads still run pods without {wanted}: {described}. "
        "istiod probably injected them before it served the new setting. They are not restarted twice for "
        "one change: restart them by hand (kubectl rollout restart) once istiod is up to date"
    )


def _wait_and_verify(
    cluster: _Cluster,
    request: RestartRequest,
    generations: Mapping[WorkloadRef, int],
    rechecked: Mapping[WorkloadRef, int],
    listings: Mapping[str, _Listing],
    retry: RetryPolicy,
    progress: Progress,
) -> None:
    restarted = tuple(str(ref) for ref in sorted(generations))
    targets = {**rechecked, **generations}
    try:
        _wait_for_rollouts(cluster, targets, listings, request.timeout_seconds, retry, progress)
        _verify_pods(cluster, targets, listings, request.cni_enabled)
    except Exception as exc:
        done = f"restarted {len(restarted)} workloads ({name_list(restarted)})" if restarted else "restarted nothing"
        raise RestartError(f"{done}, then: {exc}", restarted) from exc


def _current_generations(refs: tuple[WorkloadRef, ...], listings: Mapping[str, _Listing]) -> dict[WorkloadRef, int]:
    wanted = set(refs)
    found: dict[WorkloadRef, int] = {}
    for kind in WORKLOAD_KINDS:
        for obj in listings[kind].items:
            if (ref := ref_of(kind, obj)) in wanted:
                found[ref] = int((obj.get("metadata") or {}).get("generation") or 0)
    return found


def _report_plan(request: RestartRequest, plan: RestartPlan, progress: Progress) -> None:
    progress(
        f"CNI {'enabled' if request.cni_enabled else 'disabled'} (fingerprint {plan.fingerprint}): "
        f"{len(plan.restart)} workloads to restart, {len(plan.skipped)} skipped, "
        f"{len(plan.manual)} need a manual restart"
    )
    for ref, reason in sorted(plan.manual.items()):
        progress(f"needs a manual restart ({reason}): {ref}")
    if plan.recheck:
        action = "waiting for their rollouts" if request.wait_for_rollout else "not waiting (waitForRollout is off)"
        progress(
            f"{len(plan.recheck)} workloads were restarted for this setting by an earlier run and still run "
            f"pods with the old redirection; not restarting them again, {action}: {name_list(plan.recheck)}"
        )


def run_restart(
    request: RestartRequest,
    progress: Progress,
    *,
    retry: RetryPolicy | None = None,
    page_size: int = 500,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RestartOutcome:
    """List the cluster, restart what the plan says, optionally wait; raise RestartError on any failure."""
    retry = retry or RetryPolicy()
    pool_size = max(1, request.max_concurrent) + len(KINDS)
    with _connect(request.kubeconfig, retry, page_size, pool_size) as cluster:
        listings = _list_cluster(cluster)
        plan = _plan(request, listings)
        _report_plan(request, plan, progress)
        restarted_at = rfc3339(now())
        body = restart_patch(plan.fingerprint, restarted_at)
        generations, deleted = _restart_all(cluster, plan.restart, body, request.max_concurrent, progress)
        # Restarted by an earlier run: awaited at the generation that restart produced, never patched again.
        rechecked = _current_generations(plan.recheck, listings)
        if request.wait_for_rollout and (generations or rechecked):
            _wait_and_verify(cluster, request, generations, rechecked, listings, retry, progress)
    skipped: dict[WorkloadRef, Any] = dict(plan.skipped)
    skipped.update({ref: SkipReason.DELETED_BEFORE_RESTART for ref in deleted})
    recheck_reason = (
        SkipReason.ALREADY_RESTARTED if request.wait_for_rollout else SkipReason.RESTARTED_BUT_STILL_MISMATCHED
    )
    skipped.update(dict.fromkeys(plan.recheck, recheck_reason))
    return RestartOutcome(
        fingerprint=plan.fingerprint,
        restarted_at=restarted_at,
        restarted=tuple(str(ref) for ref in sorted(generations)),
        skipped=group_by_reason(skipped),
        manual_restart=group_by_reason(plan.manual),
    )
