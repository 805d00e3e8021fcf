"""The fault proxy against the real API server: each fault does what it says, and nothing else changes."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from localkube.cluster import Cluster
from localkube.faults import EXPIRED_CONTINUE_MESSAGE, Fault, FaultProxy
from localkube.kubeconfig import configuration
from localkube.namespaces import Namespaces
from localkube.raw import read_json
from localkube.waiting import wait_for

pytestmark = pytest.mark.cluster

CONFIGMAPS = r"/configmaps$"
ONE_CONFIGMAP = r"/configmaps/[^/]+$"
PUBLISHED = {"kube-root-ca.crt", "openshift-service-ca.crt"}
"""The ConfigMaps the v1.36 controller-manager publishes into every namespace."""
IN_NAMESPACE = {"a", "b", "c"} | PUBLISHED
WATCH_SECONDS = 30  # server-side end of a watch: far longer than any event here takes to arrive


def _proxy_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("fault-proxy")}


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_file) as started:
        yield started
    assert started.errors == []
    assert not _proxy_threads(), "the proxy left threads behind"


@pytest.fixture
def core(cluster: Cluster, proxy: FaultProxy) -> Iterator[client.CoreV1Api]:
    """The admin user's client, through the proxy."""
    with client.ApiClient(configuration(proxy.url, proxy.ca_file, cluster.control_plane.token())) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def direct(cluster: Cluster) -> client.CoreV1Api:
    """The admin user's client, straight to the API server: what really is stored."""
    return client.CoreV1Api(cluster.api)


@pytest.fixture
def namespace(namespaces: Namespaces, direct: client.CoreV1Api) -> str:
    """A namespace holding ConfigMaps a, b and c (and the ones the controller-manager publishes)."""
    name = namespaces.create("faults")
    for item in "abc":
        direct.create_namespaced_config_map(name, {"metadata": {"name": item}, "data": {"value": "0"}})
    # The controller-manager adds its ConfigMaps a moment after the namespace appears: wait for them, so that
    # every test sees the same ones.
    wait_for(
        lambda: {item.metadata.name for item in direct.list_namespaced_config_map(name).items} == IN_NAMESPACE,
        what=f"the ConfigMaps {sorted(PUBLISHED)}",
    )
    return name


def _status(exc: ApiException) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(exc.body)
    return document


def test_passes_list_get_patch_and_streams_watch_events(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    listed = core.list_namespaced_config_map(namespace)
    assert {item.metadata.name for item in listed.items} >= {"a", "b", "c"}
    assert core.read_namespaced_config_map("a", namespace).data == {"value": "0"}
    patched = core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert patched.data == {"value": "1"}
    assert direct.read_namespaced_config_map("a", namespace).data == {"value": "1"}
    # The change is made only once the watch is open: it must arrive while the stream is still running.
    change = threading.Timer(0.5, direct.patch_namespaced_config_map, ("b", namespace, {"data": {"value": "2"}}))
    started = time.monotonic()
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=patched.metadata.resource_version,
        timeout_seconds=WATCH_SECONDS,
    )
    change.start()
    try:
        event = next(stream)
    finally:
        stream.close()
        change.join()
    assert (event["type"], event["object"].metadata.name, event["object"].data) == ("MODIFIED", "b", {"value": "2"})
    assert time.monotonic() - started < WATCH_SECONDS

    # A large body comes chunked from the API server (Go chunks what outgrows its write buffer).
    big = "x" * 200_000
    direct.create_namespaced_config_map(namespace, {"metadata": {"name": "big"}, "data": {"value": big}})
    raw = core.read_namespaced_config_map("big", namespace, _preload_content=False)
    assert raw.chunked
    assert read_json(raw)["data"] == {"value": big}

    assert [(s.method, s.status, s.fault, s.reached_server) for s in proxy.requests] == [
        ("GET", 200, None, True),
        ("GET", 200, None, True),
        ("PATCH", 200, None, True),
        ("GET", 200, None, True),
        ("GET", 200, None, True),
    ]
    assert proxy.requests[3].query["watch"] == ["true"]


def test_429_with_retry_after_seconds(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    fault = proxy.add(Fault("status", "PATCH", ONE_CONFIGMAP, code=429, retry_after=3))
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert raised.value.status == 429
    assert raised.value.headers["Retry-After"] == "3"
    assert _status(raised.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "fault proxy: injected 429",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 3},
        "code": 429,
    }
    assert direct.read_namespaced_config_map("a", namespace).data == {"value": "0"}
    # The budget (one request) is spent: the next PATCH passes.
    core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert fault.fired == 1
    assert [(s.status, s.fault, s.reached_server) for s in proxy.requests] == [
        (429, "status", False),
        (200, None, True),
    ]


def test_urllib3_waits_out_a_429_on_a_get(proxy: FaultProxy, core: client.CoreV1Api, namespace: str) -> None:
    """urllib3's default Retry honours Retry-After on 429/503 for idempotent methods: a GET never sees the 429."""
    proxy.add(Fault("status", "GET", ONE_CONFIGMAP, code=429, retry_after=1))
    started = time.monotonic()
    assert core.read_namespaced_config_map("a", namespace).metadata.name == "a"
    assert time.monotonic() - started >= 1
    assert [(s.status, s.fault) for s in proxy.requests] == [(429, "status"), (200, None)]


def test_429_with_retry_after_http_date(proxy: FaultProxy, core: client.CoreV1Api, namespace: str) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    proxy.add(Fault("status", "PATCH", ONE_CONFIGMAP, code=429, retry_after=when))
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert raised.value.status == 429
    header = raised.value.headers["Retry-After"]
    assert header == format_datetime(when, usegmt=True)
    assert header.endswith(" GMT")
    assert parsedate_to_datetime(header) == when
    assert "details" not in _status(raised.value)


@pytest.mark.parametrize(("code", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_server_errors(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str, code: int, reason: str
) -> None:
    proxy.add(Fault("status", "PATCH", ONE_CONFIGMAP, code=code, times=2, message="etcd is unhappy"))
    for _ in range(2):
        with pytest.raises(ApiException) as raised:
            core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
        assert raised.value.status == code
        assert (_status(raised.value)["reason"], _status(raised.value)["message"]) == (reason, "etcd is unhappy")
    assert direct.read_namespaced_config_map("a", namespace).data == {"value": "0"}
    core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert direct.read_namespaced_config_map("a", namespace).data == {"value": "1"}
    assert proxy.count("PATCH") == 3
    assert proxy.count("PATCH", reached_server=True) == 1


def test_drop_before_never_reaches_the_server(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    before = direct.read_namespaced_config_map("a", namespace)
    fault = proxy.add(Fault("drop_before", "PATCH", ONE_CONFIGMAP))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    after = direct.read_namespaced_config_map("a", namespace)
    assert (after.data, after.metadata.resource_version) == ({"value": "0"}, before.metadata.resource_version)
    assert fault.fired == 1
    assert proxy.count("PATCH") == 1
    assert proxy.count("PATCH", reached_server=True) == 0
    assert proxy.requests[-1].status is None


def test_drop_after_takes_effect_unseen(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    proxy.add(Fault("drop_after", "PATCH", ONE_CONFIGMAP))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert direct.read_namespaced_config_map("a", namespace).data == {"value": "1"}
    (patch,) = [s for s in proxy.requests if s.method == "PATCH"]
    assert (patch.status, patch.fault, patch.reached_server, patch.upstream_status) == (None, "drop_after", True, 200)


def test_urllib3_retries_a_dropped_get_but_not_a_patch(
    proxy: FaultProxy, core: client.CoreV1Api, namespace: str
) -> None:
    """urllib3's default Retry (3) resends idempotent methods after a dropped connection: a GET survives one drop."""
    proxy.add(Fault("drop_before", "GET", ONE_CONFIGMAP))
    assert core.read_namespaced_config_map("a", namespace).metadata.name == "a"
    assert [(s.status, s.fault) for s in proxy.requests] == [(None, "drop_before"), (200, None)]
    # Four drops exhaust it.
    proxy.add(Fault("drop_before", "GET", ONE_CONFIGMAP, times=4))
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.read_namespaced_config_map("a", namespace)
    assert proxy.count("GET", ONE_CONFIGMAP, reached_server=False) == 5


def test_cut_watch_after_n_events(proxy: FaultProxy, core: client.CoreV1Api, namespace: str) -> None:
    fault = proxy.add(Fault("cut_watch", "GET", CONFIGMAPS, cut_watch_after=2))
    # A plain list of the same path is not a watch: the fault leaves it alone.
    assert len(core.list_namespaced_config_map(namespace).items) == len(IN_NAMESPACE)
    events: list[str] = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        # Without resource_version the server starts with an ADDED event per existing ConfigMap.
        for event in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=WATCH_SECONDS):
            events.append(event["type"])
    assert events == ["ADDED", "ADDED"]
    assert fault.fired == 1
    # The budget is spent: the next watch gets every event.
    names = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=WATCH_SECONDS):
        names.append(event["object"].metadata.name)
        if len(names) == len(IN_NAMESPACE):
            break
    assert set(names) == IN_NAMESPACE


def test_watch_error_sends_an_error_event_after_n_events_and_ends_the_stream(
    proxy: FaultProxy, core: client.CoreV1Api, namespace: str
) -> None:
    fault = proxy.add(Fault("watch_error", "GET", CONFIGMAPS, code=410, cut_watch_after=1))
    raw = core.list_namespaced_config_map(namespace, watch=True, timeout_seconds=WATCH_SECONDS, _preload_content=False)
    started = time.monotonic()
    lines = [json.loads(line) for line in raw.data.splitlines()]  # the whole body: it ends after the error
    assert time.monotonic() - started < WATCH_SECONDS
    assert [event["type"] for event in lines] == ["ADDED", "ERROR"]
    error = lines[1]["object"]
    assert (error["kind"], error["reason"], error["code"]) == ("Status", "Expired", 410)
    assert fault.fired == 1


def test_before_runs_first_and_delay_holds_the_request_in_flight(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    # The object vanishes between the client's decision and its request reaching the server.
    deleted = proxy.add(
        Fault("pass", "PATCH", ONE_CONFIGMAP, before=lambda: direct.delete_namespaced_config_map("a", namespace))
    )
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map("a", namespace, {"data": {"value": "1"}})
    assert raised.value.status == 404 and deleted.fired == 1
    assert proxy.requests[-1].upstream_status == 404

    proxy.add(Fault("pass", "PATCH", ONE_CONFIGMAP, delay=0.5, times=None))
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        patches = [
            pool.submit(core.patch_namespaced_config_map, name, namespace, {"data": {"value": "2"}}) for name in "bc"
        ]
        assert [future.result().data for future in patches] == [{"value": "2"}] * 2
    assert 0.5 <= time.monotonic() - started < 0.95, "held side by side, not one after the other"
    assert proxy.max_in_flight("PATCH") == 2
    assert proxy.max_in_flight("DELETE") == 0, "the action's own request went straight to the server"


def test_body_answers_200_with_the_given_body(proxy: FaultProxy, core: client.CoreV1Api, namespace: str) -> None:
    proxy.add(Fault("body", "GET", CONFIGMAPS, body=b'{"metadata": {}, "items": ["x"]}'))
    raw = core.list_namespaced_config_map(namespace, _preload_content=False)
    assert (raw.status, read_json(raw)) == (200, {"metadata": {}, "items": ["x"]})
    assert proxy.count("GET", CONFIGMAPS, reached_server=False) == 1


def test_gone_continue_expires_the_second_page(proxy: FaultProxy, core: client.CoreV1Api, namespace: str) -> None:
    fault = proxy.add(Fault("gone_continue", path=CONFIGMAPS))
    first = core.list_namespaced_config_map(namespace, limit=1)
    assert len(first.items) == 1
    token = first.metadata._continue
    assert token
    assert fault.fired == 0  # the first page carries no continue token
    with pytest.raises(ApiException) as raised:
        core.list_namespaced_config_map(namespace, limit=1, _continue=token)
    assert raised.value.status == 410
    status = _status(raised.value)
    assert (status["kind"], status["status"], status["reason"], status["code"]) == ("Status", "Failure", "Expired", 410)
    assert status["message"] == EXPIRED_CONTINUE_MESSAGE
    # The token itself is still good at the server: the fault was the proxy's.
    second = core.list_namespaced_config_map(namespace, limit=1, _continue=token)
    assert second.items[0].metadata.name != first.items[0].metadata.name
    assert [(s.status, s.fault) for s in proxy.requests] == [(200, None), (410, "gone_continue"), (200, None)]
    assert proxy.requests[1].query["continue"] == [token]


def test_request_log_counts_what_reached_the_server(
    proxy: FaultProxy, core: client.CoreV1Api, direct: client.CoreV1Api, namespace: str
) -> None:
    proxy.add(Fault("drop_before", "PATCH", r"/configmaps/a$"))
    proxy.add(Fault("status", "PATCH", r"/configmaps/a$", code=503))
    proxy.add(Fault("drop_after", "PATCH", r"/configmaps/b$"))
    for name in ("a", "a", "a", "b", "c"):
        with contextlib.suppress(ApiException, urllib3.exceptions.ProtocolError):
            core.patch_namespaced_config_map(name, namespace, {"data": {"value": "1"}})
    assert [(s.path.rsplit("/", 1)[1], s.status, s.fault) for s in proxy.requests] == [
        ("a", None, "drop_before"),
        ("a", 503, "status"),
        ("a", 200, None),
        ("b", None, "drop_after"),
        ("c", 200, None),
    ]
    assert proxy.count("PATCH") == 5
    assert proxy.count("PATCH", reached_server=True) == 3
    assert proxy.count("patch", r"/configmaps/a$", reached_server=True) == 1
    assert proxy.count("GET") == 0
    # Three of the five reached the server, and those took effect.
    for name in "abc":
        assert direct.read_namespaced_config_map(name, namespace).data == {"value": "1"}


def test_kubeconfig_points_at_the_proxy_and_trusts_only_its_ca(cluster: Cluster, proxy: FaultProxy) -> None:
    text = proxy.kubeconfig(cluster.kubeconfig())
    (entry,) = yaml.safe_load(text)["clusters"]
    assert entry["cluster"] == {
        "server": proxy.url,
        "certificate-authority-data": base64.b64encode(proxy.ca_file.read_bytes()).decode(),
    }
    with config.new_client_from_config_dict(yaml.safe_load(text)) as api:
        assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"
    assert [(s.method, s.path, s.status) for s in proxy.requests] == [("GET", "/api/v1/namespaces/default", 200)]
    # The proxy serves its own certificate: a client trusting only the API server's CA refuses it.
    settings = configuration(proxy.url, cluster.control_plane.ca_file, cluster.control_plane.token())
    settings.retries = False
    with client.ApiClient(settings) as api, pytest.raises(ApiException, match="CERTIFICATE_VERIFY_FAILED") as raised:
        client.CoreV1Api(api).read_namespace("default")
    assert raised.value.status == 0  # how the client reports an urllib3 SSLError


def test_exit_closes_the_port_and_cuts_open_watches(cluster: Cluster, namespace: str) -> None:
    control_plane = cluster.control_plane
    outcome: list[BaseException | str] = []
    opened = threading.Event()

    def watch_forever(core: client.CoreV1Api) -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=WATCH_SECONDS):
                opened.set()
            outcome.append("ended")
        except BaseException as exc:
            outcome.append(exc)

    with (
        pytest.raises(RuntimeError, match="a failing test"),
        FaultProxy(control_plane.server, control_plane.ca_file) as proxy,
    ):
        api = client.ApiClient(configuration(proxy.url, proxy.ca_file, control_plane.token()))
        watcher = threading.Thread(target=watch_forever, args=(client.CoreV1Api(api),))
        watcher.start()
        assert opened.wait(10)
        raise RuntimeError("a failing test")
    watcher.join(10)
    api.close()
    assert not watcher.is_alive()
    assert len(outcome) == 1
    # Cut mid-chunk the client raises; cut between chunks urllib3 may see a clean end. Either way it ended.
    assert outcome[0] == "ended" or isinstance(outcome[0], urllib3.exceptions.ProtocolError), outcome
    assert not _proxy_threads()
    port = int(proxy.url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
