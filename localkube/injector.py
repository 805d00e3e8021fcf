"""Plays istiod's sidecar injector: a mutating admission webhook for pod CREATE, on 127.0.0.1.

It is registered with the selectors istiod's chart renders (templates/mutatingwebhook.yaml and
revision-tags-mwc.yaml), but generically: which revision a pod gets is decided here, from state the tests can
change at any time (`set_revision`, `set_tag`, `remove_revision`):
- namespace labelled `istio-injection=enabled` (or a pod labelled `sidecar.istio.io/inject=true` in an
  unlabelled namespace): the revision the tag `default` points at (or a revision named `default`);
- namespace labelled `istio.io/rev=<name>` without `istio-injection` (or a pod labelled `istio.io/rev=<name>`
  in an unlabelled namespace): the revision `<name>`, else the revision the tag `<name>` points at;
- no such revision or tag: the pod is admitted unchanged, as when istiod has no webhook for it;
- pods labelled or annotated `sidecar.istio.io/inject: "false"`, host-network pods, kube-system and
  kube-public, and pods already injected are left alone (istiod's injectRequired).

Ambient mode (`istio.io/dataplane-mode`) is honoured as istiod honours it: its webhooks never select on that label
(charts/istiod/templates/mutatingwebhook.yaml in 1.30.3, lines 65-144: the four selectors name only `istio.io/rev`,
`istio-injection` and `sidecar.istio.io/inject`), and neither do these. So a namespace labelled
`istio.io/dataplane-mode=ambient` without an injection label matches no webhook and its pods get no sidecar; a
namespace with both labels gets sidecars (the injection label wins: the CNI node agent then leaves those pods
uncaptured, see nodes.py); a pod label `istio.io/dataplane-mode=none` does not stop injection. Moving a namespace
to ambient therefore means removing its injection labels, as Istio's migration guide orders.

In which form `istio-proxy` is injected (sidecar.py), the first of these that says decides:
- the pod's annotation `sidecar.istio.io/nativeSidecar` (Istio's): "false" is the regular container, any other
  value the native sidecar, as the injection template reads it;
- the namespace's label `sidecar.istio.io/nativeSidecar` (the same rule; not Istio's, which has no namespace-level
  switch: it stands for a namespace whose pods are all annotated, so tests can run a namespace in either form);
- the revision's `native` (`set_revision(..., native=False)`: an istiod started with ENABLE_NATIVE_SIDECARS=false);
- the injector's default, `set_native_sidecars` (True: istiod 1.30's default on Kubernetes that has native
  sidecars, as every supported AKS version does).
"""

from __future__ import annotations

import base64
import copy
import json
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.certs import serving_certificate
from localkube.raw import read_json
from localkube.sidecar import INJECT, NATIVE_SIDECAR, REVISION_LABEL, STATUS_ANNOTATION, Revision, injection_patch
from localkube.webhook_server import WebhookServer

DEFAULT_TAG = "default"
_IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public"})
_PROBE_LABEL = "aks-istio.test/injector-probe"
_NOT_DISABLED = {"key": INJECT, "operator": "NotIn", "values": ["false"]}
# (webhook name, path, namespaceSelector expressions, objectSelector expressions), after istiod's chart.
_WEBHOOKS: tuple[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]], ...] = (
    (
        "rev.namespace.sidecar-injector.istio.io",
        "/inject/rev-namespace",
        [{"key": REVISION_LABEL, "operator": "Exists"}, {"key": "istio-injection", "operator": "DoesNotExist"}],
        [_NOT_DISABLED],
    ),
    (
        "rev.object.sidecar-injector.istio.io",
        "/inject/rev-object",
        [{"key": REVISION_LABEL, "operator": "DoesNotExist"}, {"key": "istio-injection", "operator": "DoesNotExist"}],
        [_NOT_DISABLED, {"key": REVISION_LABEL, "operator": "Exists"}],
    ),
    (
        "namespace.sidecar-injector.istio.io",
        "/inject/namespace",
        [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}],
        [_NOT_DISABLED],
    ),
    (
        "object.sidecar-injector.istio.io",
        "/inject/object",
        [{"key": "istio-injection", "operator": "DoesNotExist"}, {"key": REVISION_LABEL, "operator": "DoesNotExist"}],
        [{"key": INJECT, "operator": "In", "values": ["true"]}, {"key": REVISION_LABEL, "operator": "DoesNotExist"}],
    ),
    # Not Istio's: lets __enter__ see when the API server has loaded the configuration.
    ("probe.sidecar-injector.aks-istio.test", "/probe", [], [{"key": _PROBE_LABEL, "operator": "Exists"}]),
)


@dataclass
class InjectorState:
    """Revisions, tags and the default sidecar form, as `state()` returns and `restore()` takes them."""

    revisions: dict[str, Revision] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    native_sidecars: bool = True


class Injector:
    """Context manager: serves the webhook and registers it as a MutatingWebhookConfiguration until exit."""

    def __init__(
        self, configuration: client.Configuration, *, name: str = "istio-sidecar-injector-test", timeout: float = 10
    ) -> None:
        configuration = copy.copy(configuration)
        configuration.connection_pool_maxsize = 64  # one handler thread per API server connection shares it
        self._api = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self._api)
        self.name = name
        self._timeout = timeout
        self._lock = threading.Lock()
        self._state = InjectorState()
        self._counts: Counter[tuple[str, str]] = Counter()
        self.errors: list[str] = []
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: WebhookServer | None = None
        self._registered = False

    # State the tests change while the webhook runs.
    def set_revision(
        self,
        name: str,
        hub: str = "docker.io/istio",
        tag: str = "1.30.3",
        cni: bool = True,
        variant: str | None = None,
        native: bool | None = None,
        hbone: bool = False,
    ) -> Revision:
        """Adds or replaces a revision: pods admitted from now on get its proxy."""
        revision = Revision(name=name, hub=hub, tag=tag, cni=cni, variant=variant, native=native, hbone=hbone)
        with self._lock:
            self._state.revisions[name] = revision
        return revision

    def remove_revision(self, name: str) -> None:
        with self._lock:
            self._state.revisions.pop(name, None)

    def set_tag(self, tag: str, revision: str) -> None:
        """Points a revision tag (`default`, `canary`, ...) at a revision, as `istioctl tag set` does."""
        with self._lock:
            self._state.tags[tag] = revision

    def remove_tag(self, tag: str) -> None:
        with self._lock:
            self._state.tags.pop(tag, None)

    def set_native_sidecars(self, enabled: bool) -> None:
        """The form of revisions that do not set their own: native sidecars (True) or regular containers."""
        with self._lock:
            self._state.native_sidecars = enabled

    def state(self) -> InjectorState:
        with self._lock:
            state = self._state
            return InjectorState(dict(state.revisions), dict(state.tags), state.native_sidecars)

    def restore(self, state: InjectorState) -> None:
        with self._lock:
            self._state = InjectorState(dict(state.revisions), dict(state.tags), state.native_sidecars)

    def resolve(self, name: str) -> Revision | None:
        """The revision called `name`, else the one the tag `name` points at."""
        with self._lock:
            revisions, tags = self._state.revisions, self._state.tags
            return revisions.get(name) or revisions.get(tags.get(name, ""))

    def injections(self, revision: str | None = None, namespace: str | None = None) -> int:
        """How many pods were injected (dry runs aside), optionally only for one revision and/or namespace."""
        with self._lock:
            return sum(
                count
                for (pod_namespace, pod_revision), count in self._counts.items()
                if revision in (None, pod_revision) and namespace in (None, pod_namespace)
            )

    # Lifecycle.
    def __enter__(self) -> Self:
        try:
            self._tempdir = tempfile.TemporaryDirectory(prefix="aks-istio-injector-")
            ca, cert, key = serving_certificate(Path(self._tempdir.name), "injector")
            self._server = WebhookServer(cert, key, self._review, self._record_error)
            self._server.start()
            self._register(ca)
            self._wait_until_active()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Unregisters the webhook (if the API server is still there), then stops the server."""
        if self._registered:
            try:
                admission = client.AdmissionregistrationV1Api(self._api)
                admission.delete_mutating_webhook_configuration(self.name, _request_timeout=5)
            except Exception as exc:  # the API server may be gone already; nothing is left to clean then
                self._record_error(f"unregistering {self.name}: {exc!r}")
            self._registered = False
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
        self._api.close()

    def _register(self, ca: Path) -> None:
        assert self._server is not None
        ca_bundle = base64.b64encode(ca.read_bytes()).decode()
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": self.name, "labels": {"app": "sidecar-injector"}},
            "webhooks": [
                {
                    "name": name,
                    "clientConfig": {"url": f"{self._server.url}{path}", "caBundle": ca_bundle},
                    "rules": [
                        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
                    ],
                    "namespaceSelector": {"matchExpressions": namespace_selector},
                    "objectSelector": {"matchExpressions": object_selector},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "reinvocationPolicy": "Never",
                    "timeoutSeconds": 10,
                }
                for name, path, namespace_selector, object_selector in _WEBHOOKS
            ],
        }
        admission = client.AdmissionregistrationV1Api(self._api)
        admission.create_mutating_webhook_configuration(body)
        self._registered = True

    def _wait_until_active(self) -> None:
        """The API server loads webhook configurations asynchronously: wait until a dry-run pod is mutated."""
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "injector-probe-", "labels": {_PROBE_LABEL: "true"}},
            "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.7"}]},
        }
        deadline = time.monotonic() + self._timeout
        while True:
            pod = read_json(self._core.create_namespaced_pod("default", probe, dry_run="All", _preload_content=False))
            if (pod["metadata"].get("annotations") or {}).get(_PROBE_LABEL) == "seen":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not start calling webhook {self.name}: {self.errors}")
            time.sleep(0.05)

    # The webhook.
    def _review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
        request = review["request"]
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        patch = self._probe_patch() if path == "/probe" else self._patch(path, request)
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    def _patch(self, path: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        pod = request["object"]
        namespace = request.get("namespace") or pod["metadata"].get("namespace", "")
        if not _inject_required(pod, namespace):
            return []
        # Read every time rather than cached: tests relabel namespaces and restart at once.
        namespace_labels = self._namespace_labels(namespace)
        revision = self.resolve(self._revision_name(path, pod, namespace_labels))
        if revision is None:
            return []
        if not request.get("dryRun"):
            with self._lock:
                self._counts[(namespace, revision.name)] += 1
        return injection_patch(pod, revision, native=self._native(pod, namespace_labels, revision))

    def _native(self, pod: dict[str, Any], namespace_labels: dict[str, str], revision: Revision) -> bool:
        for switches in (pod["metadata"].get("annotations") or {}, namespace_labels):
            if NATIVE_SIDECAR in switches:
                return str(switches[NATIVE_SIDECAR]) != "false"
        if revision.native is not None:
            return revision.native
        with self._lock:
            return self._state.native_sidecars

    def _revision_name(self, path: str, pod: dict[str, Any], namespace_labels: dict[str, str]) -> str:
        if path == "/inject/rev-namespace":
            return namespace_labels.get(REVISION_LABEL, "")
        if path == "/inject/rev-object":
            return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))
        return DEFAULT_TAG  # /inject/namespace and /inject/object

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        try:
            namespace_object = read_json(self._core.read_namespace(namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        labels: dict[str, str] = namespace_object["metadata"].get("labels") or {}
        return labels

    @staticmethod
    def _probe_patch() -> list[dict[str, Any]]:
        return [{"op": "add", "path": "/metadata/annotations", "value": {_PROBE_LABEL: "seen"}}]

    def _record_error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


def _inject_required(pod: dict[str, Any], namespace: str) -> bool:
    meta, spec = pod["metadata"], pod.get("spec", {})
    if namespace in _IGNORED_NAMESPACES or spec.get("hostNetwork"):
        return False
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    if STATUS_ANNOTATION in annotations:
        return False
    # istiod: the label wins over the annotation, and any value but a YAML "true" (or none) opts out.
    return str(labels.get(INJECT, annotations.get(INJECT, ""))).lower() in ("", "y", "yes", "true", "on")
