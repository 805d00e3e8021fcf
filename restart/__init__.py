"""Layer 3, the data-plane rollout: re-inject the running sidecar workloads whose pods do not match
what the mesh declares.

- `resource`: the `SidecarRestart` dynamic resource and its provider (what the engine pickles);
- `request`: the one request type (the resource's inputs) and the one error type;
- `objects`: reading pods and workloads as the API returns them;
- `plan`: which workloads to restart, skip or report (pure);
- `rollout`: when a rollout is complete or has failed (kubectl's rules, pure);
- `kube`: the Kubernetes client with its retry policy;
- `run`: the orchestration that ties them together;
- `ambient_gate`: the `AmbientMoveCheck` dynamic resource, which refuses a namespace's move to ambient mode while
  `ambient_findings` (pure) finds Istio objects that would break silently there, read by `ambient_check`.

Imports: `settings` and, inside `kube`, `run` and `ambient_check` only, the `kubernetes` client; `resource`,
`ambient_gate` and `request` import nothing heavy, because the engine's provider host imports them on every call.
"""
