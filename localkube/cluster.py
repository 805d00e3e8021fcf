"""The whole test cluster: control plane, played kubelets and injector, started and stopped together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from localkube.binaries import Binaries
from localkube.control_plane import ADMIN, DEFAULT_USERS, ControlPlane
from localkube.injector import DEFAULT_TAG, Injector
from localkube.nodes import Kubelets

# The program's default control plane is an unrevisioned istiod: its revision is called `default`, and
# `istio-injection=enabled` namespaces get it (a canary is a revision such as `1-30-3`, with a tag of its own).
DEFAULT_REVISION = "default"
DEFAULT_NODES = 3


@dataclass
class Cluster:
    """What the fixtures hand to tests."""

    control_plane: ControlPlane
    kubelets: Kubelets
    injector: Injector
    api: client.ApiClient
    """An admin client (group system:masters), shared: do not close it."""

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.kubelets.nodes

    @property
    def users(self) -> tuple[str, ...]:
        return self.control_plane.users

    def kubeconfig(self, user: str = ADMIN) -> str:
        """Kubeconfig YAML for `user`, with the CA inlined (what a restart tool would be given)."""
        return self.control_plane.kubeconfig(user)

    def kubeconfig_file(self, user: str = ADMIN) -> Path:
        return self.control_plane.kubeconfig_file(user)

    def api_client(self, user: str = ADMIN) -> client.ApiClient:
        """A new client for `user`; the caller closes it."""
        return self.control_plane.api_client(user)


@contextmanager
def running_cluster(
    binaries: Binaries, *, nodes: int = DEFAULT_NODES, users: Sequence[str] = DEFAULT_USERS
) -> Iterator[Cluster]:
    """Starts everything; on exit stops the injector and kubelets (they need the API server) before the rest."""
    with ExitStack() as stack:
        control_plane = stack.enter_context(ControlPlane(binaries, users=users))
        kubelets = stack.enter_context(Kubelets(control_plane.configuration(), count=nodes))
        injector = stack.enter_context(Injector(control_plane.configuration()))
        injector.set_revision(DEFAULT_REVISION, hub="docker.io/istio", tag="1.30.3", cni=True)
        injector.set_tag(DEFAULT_TAG, DEFAULT_REVISION)
        api = stack.enter_context(control_plane.api_client())
        yield Cluster(control_plane=control_plane, kubelets=kubelets, injector=injector, api=api)
