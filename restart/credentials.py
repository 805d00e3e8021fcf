"""The kubeconfig, turned into a client configuration, without ever showing a credential.

The kubeconfig is a secret: a loader or parser error quotes parts of it, an exec plugin's stderr may hold a
token, and a server URL may carry `user:password@` or `?access_token=`. So only types, our own text and the
server's public URL reach a message or the log.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from kubernetes import client, config

from restart.request import RestartError

_load_kubeconfig: Callable[..., None] = config.load_kube_config_from_dict


class _CredentialSafeLog(logging.Filter):
    """The kubernetes client logs an exec plugin's failure on the root logger with the plugin's stderr, which
    may hold a token: such a record keeps its level and place, with our own text instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and record.module in ("kube_config", "exec_provider"):
            record.msg, record.args = (
                "the kubeconfig's exec plugin failed (its output is not shown: it may hold a credential)",
                (),
            )
        return True


logging.getLogger().addFilter(_CredentialSafeLog())


UNNAMED_SERVER = "the API server"
"""How a server whose address cannot be shown safely is named."""


def public_url(url: str) -> str:
    """`url` without userinfo, query or fragment: what may be shown of a server address.

    Only an http(s) URL with a host is shown. Anything else (`user:password@host:1` without a scheme parses as
    scheme `user`, and a URL with control characters could forge log lines) reads as the API server.
    """
    if not isinstance(url, str) or len(url) > 2048 or not url.isprintable():
        return UNNAMED_SERVER
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return UNNAMED_SERVER
    host = parts.hostname or ""
    if parts.scheme.lower() not in ("http", "https") or not host:
        return UNNAMED_SERVER
    if ":" in host:
        host = f"[{host}]"
    return urllib.parse.urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def api_server(url: str) -> str:
    """The server for a message: `the API server at https://host:443`, or `the API server`."""
    shown = public_url(url)
    return shown if shown == UNNAMED_SERVER else f"{UNNAMED_SERVER} at {shown}"


"""Names this program in the patched objects' `managedFields`, so a reader can tell who set the annotations."""


def _credentials_expire(kubeconfig: Mapping[str, Any]) -> bool:
    """Whether the current context's user gets short-lived tokens (an exec plugin such as kubelogin)."""
    contexts = {c.get("name"): c.get("context") or {} for c in kubeconfig.get("contexts") or []}
    user_name = contexts.get(kubeconfig.get("current-context"), {}).get("user")
    users = {u.get("name"): u.get("user") or {} for u in kubeconfig.get("users") or []}
    user = users.get(user_name, {})
    return "exec" in user or "auth-provider" in user


def client_configuration(kubeconfig: str, cert_dir: str) -> Any:
    """A `kubernetes.client.Configuration` for the kubeconfig's current context (certificates in `cert_dir`)."""
    try:
        loaded = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        # The parser's message quotes the offending text, which may hold credentials: leave it out.
        raise RestartError("the kubeconfig is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise RestartError("the kubeconfig is not a mapping")
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
    return configuration
