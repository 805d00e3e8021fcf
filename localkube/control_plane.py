"""A real Kubernetes v1.36 control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager.

Nothing runs pods here: `nodes.Kubelets` plays the nodes and `injector.Injector` plays istiod's webhook.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.binaries import Binaries
from localkube.certs import rsa_keypair
from localkube.kubeconfig import configuration, kubeconfig_yaml
from localkube.processes import Process

ADMIN = "admin"
DEFAULT_USERS = ("restarter", "reader")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# etcd on tmpfs: fsync on a real disk makes 2,000-pod tests slow.
_FAST_DISK = Path("/dev/shm")
_POLL_SECONDS = 0.1
_DIR_PREFIX = "aks-istio-kube-"
_OWNER_FILE = "owner.pid"


class StartupError(RuntimeError):
    """A component died or did not become ready; the message ends with the tail of its log."""


class ControlPlane:
    """Context manager: starts the three components, writes kubeconfigs, stops everything on exit.

    Users: `admin` (group `system:masters`) and the unprivileged `users`, whom tests bind roles to; each gets a
    random bearer token (static token file: the set of users is fixed at start-up).
    """

    def __init__(
        self,
        binaries: Binaries,
        *,
        users: Sequence[str] = DEFAULT_USERS,
        startup_timeout: float = 60.0,
        apiserver_flags: Sequence[str] = (),
        controller_manager_flags: Sequence[str] = (),
    ) -> None:
        self._binaries = binaries
        self._tokens = {name: secrets.token_urlsafe(24) for name in (ADMIN, *users)}
        self._startup_timeout = startup_timeout
        self._apiserver_flags = tuple(apiserver_flags)
        self._controller_manager_flags = tuple(controller_manager_flags)
        self._processes: list[Process] = []
        self.started_pids: list[int] = []
        """Every process started, kept after stop(): tests check that none outlives the context."""
        self._dirs: list[Path] = []
        self.workdir = Path()
        self.server = ""
        self.ca_file = Path()
        self.startup_seconds = 0.0

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(self._tokens)

    @property
    def processes(self) -> tuple[Process, ...]:
        return tuple(self._processes)

    @property
    def admin_kubeconfig(self) -> str:
        return self.kubeconfig(ADMIN)

    @property
    def admin_kubeconfig_file(self) -> Path:
        return self.kubeconfig_file(ADMIN)

    def token(self, user: str = ADMIN) -> str:
        return self._tokens[user]

    def kubeconfig(self, user: str = ADMIN) -> str:
        """The YAML of a kubeconfig for `user`, with the API server's CA inlined."""
        return kubeconfig_yaml(self.server, self.ca_file, user, self._tokens[user])

    def kubeconfig_file(self, user: str = ADMIN) -> Path:
        path = self.workdir / f"{user}.kubeconfig"
        if not path.exists():
            path.write_text(self.kubeconfig(user))
        return path

    def configuration(self, user: str = ADMIN, pool_size: int = 16) -> client.Configuration:
        """Client settings for `user` (bearer token, CA verified); `pool_size`: threads sharing one client."""
        return configuration(self.server, self.ca_file, self._tokens[user], pool_size)

    def api_client(self, user: str = ADMIN, pool_size: int = 16) -> client.ApiClient:
        """A new ApiClient for `user`; close it (or use it as a context manager) when done."""
        return client.ApiClient(self.configuration(user, pool_size))

    def __enter__(self) -> Self:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops the components, newest first (the controller-manager before the API server before etcd)."""
        while self._processes:
            self._processes.pop().stop()
        while self._dirs:
            shutil.rmtree(self._dirs.pop(), ignore_errors=True)

    def _start(self) -> None:
        self.workdir = self._mkdtemp(None)
        deadline = time.monotonic() + self._startup_timeout
        etcd_client, etcd_peer, apiserver_port = _free_ports(3)
        self.server = f"https://127.0.0.1:{apiserver_port}"
        sa_key, sa_pub = rsa_keypair(self.workdir, "service-account")
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(
            "".join(
                f'{token},{user},{user},"system:masters"\n' if user == ADMIN else f"{token},{user},{user}\n"
                for user, token in self._tokens.items()
            )
        )
        cert_dir = self.workdir / "certs"
        self.ca_file = cert_dir / "apiserver.crt"
        # Started together, each waiting for the one before as it does in a cluster: the API server retries etcd,
        # the controller-manager waits for the API server's /healthz. Only the CA must be complete first.
        started = [
            self._start_etcd(etcd_client, etcd_peer),
            self._start_apiserver(etcd_client, apiserver_port, cert_dir, sa_key, sa_pub, tokens),
        ]
        _wait(started, deadline, lambda: self._apiserver_status() is not None, "kube-apiserver to serve TLS")
        started.append(self._start_controller_manager(sa_key))
        _wait(started[:2], deadline, lambda: self._apiserver_status() == 200, "kube-apiserver /readyz")
        with self.api_client() as admin:
            core = client.CoreV1Api(admin)
            _wait(started, deadline, lambda: _default_service_account(core), "the default ServiceAccount")

    def _start_etcd(self, client_port: int, peer_port: int) -> Process:
        data_dir = self._mkdtemp(_FAST_DISK if _FAST_DISK.is_dir() else None) / "etcd"
        peer = f"http://127.0.0.1:{peer_port}"
        return self._spawn(
            "etcd",
            self._binaries.etcd,
            "--name=test",
            f"--data-dir={data_dir}",
            f"--listen-client-urls=http://127.0.0.1:{client_port}",
            f"--advertise-client-urls=http://127.0.0.1:{client_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--log-level=warn",
            "--logger=zap",
        )

    def _start_apiserver(
        self, etcd_port: int, port: int, cert_dir: Path, sa_key: Path, sa_pub: Path, tokens: Path
    ) -> Process:
        return self._spawn(
            "kube-apiserver",
            self._binaries.apiserver,
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={cert_dir}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={tokens}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            # No token volumes: nothing here would mount them, and unprivileged test users need no tokens.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints validation rejects: without
            # this the reconciler logs an error every few seconds.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            *self._apiserver_flags,
        )

    def _start_controller_manager(self, sa_key: Path) -> Process:
        return self._spawn(
            "kube-controller-manager",
            self._binaries.controller_manager,
            f"--kubeconfig={self.admin_kubeconfig_file}",
            "--leader-elect=false",
            "--secure-port=0",
            # Nobody runs node leases here, and no pod CIDRs are needed.
            "--controllers=*,-node-lifecycle-controller,-node-ipam-controller",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={self.ca_file}",
            "--use-service-account-credentials=false",
            # Defaults (20 qps, 5 workers) make a 2,000-pod rollout take minutes.
            "--kube-api-qps=1000",
            "--kube-api-burst=2000",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            "--concurrent-statefulset-syncs=20",
            "--concurrent-gc-syncs=30",
            "--concurrent-namespace-syncs=20",
            "--profiling=false",
            *self._controller_manager_flags,
        )

    def _spawn(self, name: str, prefix: Sequence[str], *flags: str) -> Process:
        process = Process(name, [*prefix, *flags], self.workdir / f"{name}.log", self.workdir)
        self._processes.append(process)
        self.started_pids.append(process.pid)
        return process

    def _mkdtemp(self, parent: Path | None) -> Path:
        _remove_abandoned(Path(parent or tempfile.gettempdir()))
        path = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=parent))
        self._dirs.append(path)
        (path / _OWNER_FILE).write_text(str(os.getpid()))
        return path

    def _apiserver_status(self) -> int | None:
        """The HTTP status of GET /readyz, verified against the CA; None while no TLS connection succeeds."""
        request = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token()}"})
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))  # absent or half written: SSLError
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None


def _remove_abandoned(parent: Path) -> None:
    """Removes folders of test runs that were killed (SIGKILL leaves them; on /dev/shm they hold memory)."""
    for folder in parent.glob(f"{_DIR_PREFIX}*"):
        try:
            owner = int((folder / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        if owner <= 0:  # os.kill would address a process group
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def _free_ports(count: int) -> list[int]:
    """Ports the kernel reports free; all are held open together so that they are distinct."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _default_service_account(core: client.CoreV1Api) -> bool:
    """The serviceaccount controller's first act: proof that the controller-manager is up and syncing."""
    try:
        core.read_namespaced_service_account("default", "default", _request_timeout=2)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _wait(processes: Sequence[Process], deadline: float, ready: Callable[[], bool], what: str) -> None:
    """Polls `ready`; fails with the log of a component that exited, or of the newest one on timeout."""
    while not ready():
        for process in processes:
            if not process.running():
                raise StartupError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        if time.monotonic() > deadline:
            newest = processes[-1]
            raise StartupError(f"timed out waiting for {what}; {newest.name} log:\n{newest.tail()}")
        time.sleep(_POLL_SECONDS)
