"""One evaluation in a fresh process: `program <stack>` (the real program) or `floor` (SDK imports and
one resource of each kind the program registers). Prints the resource types it registered."""

from __future__ import annotations

import sys


def floor() -> None:
    import pulumi
    import pulumi.dynamic
    import pulumi_kubernetes as k8s
    from pulumi_azure_native import authorization, containerservice, resources
    from pulumi_kubernetes.core import v1 as core
    from pulumi_kubernetes.helm import v3 as helm

    class Floor(pulumi.ComponentResource):
        def __init__(self) -> None:
            super().__init__("aks-istio:floor:Floor", "floor")

    class NoopProvider(pulumi.dynamic.ResourceProvider):
        pass

    class Dynamic(pulumi.dynamic.Resource, module="floor", name="Dynamic"):
        pass

    parent = pulumi.ResourceOptions(parent=Floor())
    group = resources.ResourceGroup("rg", opts=parent)
    cluster = containerservice.ManagedCluster("aks", resource_group_name=group.name, opts=parent)
    containerservice.AgentPool("pool", resource_group_name=group.name, resource_name_=cluster.name, opts=parent)
    authorization.PolicyAssignment("policy", scope=cluster.id, opts=parent)
    credentials = containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name=group.name, resource_name=cluster.name
    )
    provider = k8s.Provider("k8s", kubeconfig=credentials.apply(lambda c: c.kubeconfigs[0].value), opts=parent)
    on_cluster = pulumi.ResourceOptions(parent=parent.parent, provider=provider)
    core.Namespace("ns", opts=on_cluster)
    helm.Release("release", chart="base", opts=on_cluster)
    Dynamic(NoopProvider(), "dynamic", {}, opts=parent)


def main() -> None:
    from offline.engine import run_program, stack_config

    if sys.argv[1] == "floor":
        run = run_program("dev", {}, program=floor)
    else:
        run = run_program(sys.argv[2], stack_config(sys.argv[2]))
    print(" ".join(sorted({r.type for r in run.resources})))


if __name__ == "__main__":
    main()
