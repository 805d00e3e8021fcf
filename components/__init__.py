"""Layer 2, the infrastructure: the ComponentResources `AksCluster` and `IstioMesh`, and the Helm values
they pass (`istio_values`, `addon_values`). Imports: `settings`, pulumi and its Azure and Kubernetes SDKs.

`components.restart` only keeps the restart provider's old import path alive (see that module).
"""
