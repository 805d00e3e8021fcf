"""Istio's CRDs and the Gateway API's, installed into a running control plane as a real cluster gets them.

Ambient mode's migration reads AuthorizationPolicy, PeerAuthentication, EnvoyFilter, VirtualService and
DestinationRule objects, and its waypoints are Gateway API `Gateway`s of class `istio-waypoint`: a test cluster
needs their CRDs. The files are read when installing, never copied into localkube:
- Istio's: the `base` chart's `files/crd-all.gen.yaml` of a reference release (`../shared/reference/istio-<version>`),
  as its `templates/crds.yaml` renders them (one object per document; the chart's labels left out);
- the Gateway API's standard channel: the file the program installs (`components/gateway_api/standard-install.yaml`),
  its CRDs and the ValidatingAdmissionPolicy (with its binding) that refuses unsafe CRD changes.
Objects are created with the official client, CRDs first waited for until Established and NamesAccepted. An object
that exists already is left as it is (and not reported as installed), so installing twice is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.binaries import REPO_ROOT
from localkube.raw import drain, read_json

ISTIO_RELEASE = "1.30.3"
ISTIO_CRDS = REPO_ROOT.parent / "shared" / "reference" / f"istio-{ISTIO_RELEASE}" / "charts/base/files/crd-all.gen.yaml"
GATEWAY_API_CRDS = REPO_ROOT / "components" / "gateway_api" / "standard-install.yaml"
_CRD = "CustomResourceDefinition"
_POLICY = "ValidatingAdmissionPolicy"
_BINDING = "ValidatingAdmissionPolicyBinding"
_KINDS = (_CRD, _POLICY, _BINDING)


@dataclass
class Installed:
    """What `install` created (kind, name), in order; `uninstall` removes exactly these."""

    objects: list[tuple[str, str]] = field(default_factory=list)

    @property
    def crds(self) -> list[str]:
        return [name for kind, name in self.objects if kind == _CRD]


def manifests(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The objects of the files, in file order; empty documents skipped, `status` dropped (the server owns it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the Istio file is 850 kB: libyaml when present
    for path in paths:
        for document in yaml.load_all(path.read_text(), Loader=loader):
            if not document:
                continue
            if document.get("kind") not in _KINDS:
                raise ValueError(f"{path}: unexpected kind {document.get('kind')!r}")
            document.pop("status", None)
            yield document


def install(
    api: client.ApiClient, paths: Sequence[Path] = (ISTIO_CRDS, GATEWAY_API_CRDS), *, timeout: float = 60.0
) -> Installed:
    """Creates the objects of `paths` and waits until every CRD among them is served; returns what it created."""
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no CRD file at {', '.join(missing)}")
    extensions = client.ApiextensionsV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    create = {
        _CRD: extensions.create_custom_resource_definition,
        _POLICY: admission.create_validating_admission_policy,
        _BINDING: admission.create_validating_admission_policy_binding,
    }
    installed = Installed()
    crds: list[str] = []
    for manifest in manifests(paths):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == _CRD:
            crds.append(name)
        try:
            drain(create[kind](manifest, _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:
                raise RuntimeError(f"creating {kind} {name}: {exc.status} {exc.body}") from exc
            continue
        installed.objects.append((kind, name))
    deadline = time.monotonic() + timeout
    for name in crds:
        _wait_established(extensions, name, deadline)
    return installed


def uninstall(api: client.ApiClient, installed: Installed) -> None:
    """Deletes what `install` created, newest first; does not wait for the CRDs' objects to be cleaned up."""
    extensions = client.ApiextensionsV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    delete = {
        _CRD: extensions.delete_custom_resource_definition,
        _POLICY: admission.delete_validating_admission_policy,
        _BINDING: admission.delete_validating_admission_policy_binding,
    }
    for kind, name in reversed(installed.objects):
        try:
            drain(delete[kind](name, _preload_content=False))
        except ApiException as exc:
            if exc.status != 404:
                raise
    installed.objects.clear()


def _wait_established(extensions: client.ApiextensionsV1Api, name: str, deadline: float) -> None:
    while True:
        crd = read_json(extensions.read_custom_resource_definition(name, _preload_content=False))
        conditions = {
            condition["type"]: condition["status"] for condition in (crd.get("status") or {}).get("conditions") or []
        }
        if conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CustomResourceDefinition {name} is not Established: {conditions}")
        time.sleep(0.1)
