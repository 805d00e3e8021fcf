"""A real Kubernetes v1.24 control plane on 127.0.0.1 for tests (DESIGN.md, "Testing", layer 4).

It runs etcd, kube-apiserver and kube-controller-manager as child processes (token authentication, RBAC,
admission as in a real cluster) and plays, in threads of the test process, what it does not run:
- the nodes' kubelets (`nodes.Kubelets`): Node objects, binding pending pods, reporting them Running and
  Ready, confirming graceful deletions;
- istiod's sidecar injector (`injector.Injector`): a mutating admission webhook over HTTPS that injects
  `istio-proxy` and `istio-validation`/`istio-init` as Istio's template does, per revision and tag.
Tests reach it through the official `kubernetes` client only; the fixtures are in `plugin.py`.

Environment variables:
- `AKS_ISTIO_KUBE_APISERVER`, `AKS_ISTIO_KUBE_CONTROLLER_MANAGER`: kube-apiserver and kube-controller-manager
  binaries to use instead of `../shared/kube/kube.xz` (which is decompressed once into the cache folder);
- `AKS_ISTIO_ETCD`: the etcd binary (default: `etcd` on PATH);
- `AKS_ISTIO_CACHE_DIR`: where the decompressed bundle is kept (default `~/.cache/aks-istio`).
Without the binaries the tests that need the cluster are skipped, with one line saying how to get them.
"""
