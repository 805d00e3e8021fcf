"""No credential reaches a restart error or the log: a token that must never appear, in every way it could.

Only known-safe text is shown: the verb, the resource, the namespace, the status code, Kubernetes' own Status
message; server URLs without userinfo or query; unknown exceptions by their type. Every kubeconfig here fails
before any answer of a server (unreadable, refused by the client, its exec plugin failing, or nothing listening),
so no cluster is needed; the errors a real API server causes are tested in test_cluster*.py and test_host.py.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from restart.credentials import public_url
from restart.request import RestartError, RestartRequest
from restart.resource import SidecarRestartProvider
from restart.run import run_restart
from tests.restart.cluster_helpers import FAST

TOKEN = "tok-3f9a-never-shown"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig_for(server: str, token: str = TOKEN) -> str:
    """A kubeconfig document for `server` with a bearer token."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "aks", "cluster": {"server": server}}],
            "users": [{"name": "aks", "user": {"token": token}}],
            "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "aks"}}],
            "current-context": "aks",
        }
    )


def request(kubeconfig: str) -> RestartRequest:
    props = {"kubeconfig": kubeconfig, "cniEnabled": True, "excludeNamespaces": [], "timeoutSeconds": 30}
    return RestartRequest.from_inputs(props)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://admin:{TOKEN}@10.0.0.1:6443/base?access_token={TOKEN}#frag", "https://10.0.0.1:6443/base"),
        ("https://[::1]:443", "https://[::1]:443"),
        ("https://aks.example.net", "https://aks.example.net"),
        (f"admin:{TOKEN}@10.0.0.1:6443", "the API server"),
        (f"10.0.0.1:{TOKEN}", "the API server"),
        (f"ftp://admin:{TOKEN}@host/x", "the API server"),
        (f"//admin:{TOKEN}@host:1/x", "the API server"),
        (f"https://admin:{TOKEN}@:443", "the API server"),
        ("https://host/\n::error::forged", "the API server"),
    ],
)
def test_a_server_url_is_shown_without_userinfo_query_or_fragment(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_a_server_without_a_scheme_is_called_the_api_server_in_the_connection_error() -> None:
    server = f"admin:{TOKEN}@127.0.0.1:{closed_port()}"
    request = RestartRequest.from_inputs({"kubeconfig": kubeconfig_for(server, TOKEN), "cniEnabled": True})
    with pytest.raises(RestartError) as caught:
        run_restart(request, lambda _line: None, retry=FAST)
    assert TOKEN not in str(caught.value)
    assert "the API server" in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreachable_server_with_credentials_in_its_url_is_named_without_them() -> None:
    url = f"http://admin:{TOKEN}@127.0.0.1:{closed_port()}/?access_token={TOKEN}"
    started = time.monotonic()
    with pytest.raises(RestartError, match=r"API server at http://127.0.0.1:\d+/ is unreachable") as caught:
        run_restart(request(kubeconfig_for(url)), lambda _line: None, retry=FAST)
    assert TOKEN not in str(caught.value)
    assert time.monotonic() - started < 5, "clearly and quickly: no long retries against nothing"


def test_an_unreadable_kubeconfig_is_reported_without_its_content() -> None:
    secret_line = f"token: {TOKEN}: ["
    with pytest.raises(RestartError, match="not valid YAML") as caught:
        run_restart(request(secret_line), print, retry=FAST)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"contexts": 5}, "cannot be used: AttributeError", id="malformed"),
        pytest.param({"current-context": "nope"}, "cannot be used: ConfigException", id="no-such-context"),
        pytest.param({"clusters": [{"name": "aks", "cluster": {}}]}, "names no API server", id="no-server"),
    ],
)
def test_a_kubeconfig_the_client_refuses_is_reported_without_its_content(change: dict[str, Any], expected: str) -> None:
    document = {**json.loads(kubeconfig_for("http://127.0.0.1:1")), **change}
    with pytest.raises(RestartError, match=expected) as caught:
        run_restart(request(json.dumps(document)), print, retry=FAST)
    assert TOKEN not in str(caught.value) and caught.value.__cause__ is None


def plugin(tmp_path: Path, body: str) -> dict[str, Any]:
    script = tmp_path / "kubelogin"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    script.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}}


def with_user(user: dict[str, Any]) -> str:
    """A kubeconfig of `user` for a server nothing answers: the plugin's credential is used, or fails, first."""
    document = json.loads(kubeconfig_for(f"http://127.0.0.1:{closed_port()}"))
    document["users"][0]["user"] = user
    return json.dumps(document)


def test_an_exec_plugin_that_fails_printing_a_token_is_never_quoted_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    failing = plugin(tmp_path, f"print('refresh failed for token {TOKEN}', file=sys.stderr)\nsys.exit(1)")
    props = {
        "kubeconfig": with_user(failing), "cniEnabled": True, "excludeNamespaces": [],
        "maxConcurrent": 2, "waitForRollout": False, "timeoutSeconds": 30,
    }  # fmt: skip
    with caplog.at_level(logging.DEBUG), pytest.raises(RestartError) as caught:
        SidecarRestartProvider().create(SidecarRestartProvider().check({}, props).inputs)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caplog.text and "exec plugin failed" in caplog.text
    assert TOKEN not in capfd.readouterr().err


def test_a_token_that_turns_malformed_is_reported_by_type_alone(tmp_path: Path) -> None:
    credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": f"{TOKEN}\nX-Injected: 1"}}  # fmt: skip
    malformed = plugin(tmp_path, f"print(json.dumps({credential!r}))")
    props = {
        "kubeconfig": with_user(malformed), "cniEnabled": True, "excludeNamespaces": [],
        "maxConcurrent": 2, "waitForRollout": False, "timeoutSeconds": 30,
    }  # fmt: skip
    with pytest.raises(RestartError) as caught:
        SidecarRestartProvider().create(SidecarRestartProvider().check({}, props).inputs)
    assert TOKEN not in str(caught.value)
    assert "unexpectedly" in str(caught.value) or "rejected" in str(caught.value), caught.value
