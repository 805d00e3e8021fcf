"""Example app stack: a small HTTP service in one of the platform's mesh namespaces, sidecar or ambient.

It reads the aks-istio platform stack (`platformStack`) through the typed helper, talks to the
cluster with the platform's kubeconfig (a secret), refuses a `namespace` that is not one of the
platform's mesh namespaces, and runs a pod that Pod Security `baseline` (even `restricted`) admits:
no added capabilities, non-root, no privilege escalation. With the platform's CNI plugin the injected
sidecar needs no NET_ADMIN either, so the namespace can enforce that level.

    cd examples/app && pulumi stack init dev && pulumi up

Attach the platform's NET_ADMIN guard to every preview and update of an app stack: app stacks are
where workloads are declared as Pulumi resources, so this is where the pack's workload rule can
refuse a container that adds NET_ADMIN or NET_RAW (or runs privileged) before it reaches the cluster:

    pulumi preview --policy-pack ../../policy
    pulumi up --policy-pack ../../policy

(In CI, pulumi/actions' `policyPacks:` input does the same.) The pack checks only what this program
declares; the sidecar istiod injects at admission is kept free of NET_ADMIN by the platform's CNI
setting and the namespace's Pod Security label, not by the pack.
"""

import pulumi
import pulumi_kubernetes as k8s

from aks_istio_outputs import NamespaceDataPlane, read_platform_outputs

DEFAULT_IMAGE = "hashicorp/http-echo:1.0.0"  # also the default in Pulumi.yaml
DEFAULT_REPLICAS = 2  # also the default in Pulumi.yaml
APP_NAME = "http-echo"
HTTP_PORT = 5678
NON_ROOT_USER = 65532  # the image is a static binary on scratch: any non-root uid works


def pod_spec(image: str) -> k8s.core.v1.PodSpecArgs:
    """One HTTP container that Pod Security `restricted` admits (and so `baseline` too)."""
    return k8s.core.v1.PodSpecArgs(
        automount_service_account_token=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=NON_ROOT_USER,
            run_as_group=NON_ROOT_USER,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[
            k8s.core.v1.ContainerArgs(
                name=APP_NAME,
                image=image,
                args=[f"-listen=:{HTTP_PORT}", "-text=hello from the mesh"],
                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=HTTP_PORT)],
                readiness_probe=k8s.core.v1.ProbeArgs(
                    http_get=k8s.core.v1.HTTPGetActionArgs(path="/", port="http"),
                ),
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "10m", "memory": "16Mi"},
                    limits={"memory": "32Mi"},
                ),
                security_context=k8s.core.v1.SecurityContextArgs(
                    allow_privilege_escalation=False,
                    read_only_root_filesystem=True,
                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                ),
            )
        ],
    )


def template_labels(labels: dict[str, str], plane: NamespaceDataPlane) -> dict[str, str]:
    """In a sidecar namespace the pod asks for its sidecar (explicit, and it survives a namespace relabel). In an
    ambient one it must not: a pod's own `sidecar.istio.io/inject: "true"` would get it a sidecar there too."""
    return labels if plane.ambient else {**labels, "sidecar.istio.io/inject": "true"}


config = pulumi.Config()
platform = read_platform_outputs(config.require("platformStack"))
# Resolves only if the platform runs this namespace in the mesh; otherwise the update stops here.
namespace = platform.require_mesh_namespace(config.require("namespace"))
data_plane = platform.data_plane_of(config.require("namespace"))

cluster = k8s.Provider("platform-cluster", kubeconfig=platform.kubeconfig)
in_cluster = pulumi.ResourceOptions(provider=cluster)

labels = {"app.kubernetes.io/name": APP_NAME}
deployment = k8s.apps.v1.Deployment(
    APP_NAME,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=config.get_int("replicas", DEFAULT_REPLICAS),
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=data_plane.apply(lambda plane: template_labels(labels, plane))),
            spec=pod_spec(config.get("image", DEFAULT_IMAGE)),
        ),
    ),
    opts=in_cluster,
)

service = k8s.core.v1.Service(
    APP_NAME,
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels),
    spec=k8s.core.v1.ServiceSpecArgs(
        selector=labels,
        # Named `http` with appProtocol so Istio treats the traffic as HTTP, not opaque TCP.
        ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http", app_protocol="http")],
    ),
    opts=in_cluster,
)

pulumi.export("namespace", namespace)
# `ambient` or `sidecar`; with a waypoint, L7 policy for this service attaches to it (`targetRefs`, kind Gateway).
pulumi.export("dataPlaneMode", data_plane.apply(lambda plane: plane.mode))
pulumi.export("waypoint", data_plane.apply(lambda plane: plane.waypoint))
pulumi.export("url", pulumi.Output.concat("http://", service.metadata.name, ".", namespace, ".svc.cluster.local"))
