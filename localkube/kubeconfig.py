"""Kubeconfig files and API clients for one user of the test control plane, verified against its CA."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from kubernetes import client


def kubeconfig_yaml(server: str, ca_file: Path, user: str, token: str) -> str:
    """A kubeconfig with the CA inlined (`certificate-authority-data`), so it works from any directory."""
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


def configuration(server: str, ca_file: Path, token: str, pool_size: int = 16) -> client.Configuration:
    """Client settings for a bearer token; `pool_size` should cover the threads sharing one ApiClient."""
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.connection_pool_maxsize = pool_size
    return configuration
