"""Grants for the unprivileged test users, effective before `grant` returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.raw import drain, read_json

Rule = Mapping[str, Sequence[str]]


def grant(
    api: client.ApiClient, user: str, rules: Sequence[Rule], *, name: str, namespace: str | None = None
) -> Callable[[], None]:
    """Gives `user` the RBAC `rules` (e.g. {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}).

    A Role and RoleBinding in `namespace`, or a ClusterRole and ClusterRoleBinding when it is None. Waits until the
    authorizer, which reads RBAC from a cache, allows the first rule. Returns a function that revokes the grant.
    """
    rbac = client.RbacAuthorizationV1Api(api)
    kind = "Role" if namespace else "ClusterRole"
    role = {"metadata": {"name": name}, "rules": [dict(rule) for rule in rules]}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    if namespace:
        drain(rbac.create_namespaced_role(namespace, role, _preload_content=False))
        drain(rbac.create_namespaced_role_binding(namespace, binding, _preload_content=False))
    else:
        drain(rbac.create_cluster_role(role, _preload_content=False))
        drain(rbac.create_cluster_role_binding(binding, _preload_content=False))
    _wait_allowed(api, user, rules[0], namespace)

    def revoke() -> None:
        calls: list[Callable[..., Any]]
        if namespace:
            calls = [
                lambda: rbac.delete_namespaced_role_binding(name, namespace, _preload_content=False),
                lambda: rbac.delete_namespaced_role(name, namespace, _preload_content=False),
            ]
        else:
            calls = [
                lambda: rbac.delete_cluster_role_binding(name, _preload_content=False),
                lambda: rbac.delete_cluster_role(name, _preload_content=False),
            ]
        for call in calls:
            try:
                drain(call())
            except ApiException as exc:
                if exc.status != 404:
                    raise

    return revoke


def _wait_allowed(api: client.ApiClient, user: str, rule: Rule, namespace: str | None, timeout: float = 10) -> None:
    review = {
        "spec": {
            "user": user,
            "resourceAttributes": {
                "group": rule.get("apiGroups", [""])[0],
                "resource": rule["resources"][0],
                "verb": rule["verbs"][0],
                "namespace": namespace or "",
            },
        }
    }
    authorization = client.AuthorizationV1Api(api)
    deadline = time.monotonic() + timeout
    while not read_json(authorization.create_subject_access_review(review, _preload_content=False))["status"].get(
        "allowed"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"RBAC for {user} did not take effect: {rule}")
        time.sleep(0.05)
