"""Sidecar restart on the real control plane: N Deployments re-injected several ways, one after the other.

Starts kube-apiserver, kube-controller-manager and etcd on 127.0.0.1 (`localkube`: 3 played nodes and the
played istiod injector), creates N Deployments (default 500, one replica each, ten per namespace labelled
`istio-injection=enabled`, at most 50 namespaces) while the injector's default revision injects `istio-init`,
waits until all are rolled out, then runs the scenarios asked for (`scenarios/`, one module each). The default
one, `ways`, switches the injector to the CNI (`istio-validation`) and restarts all N:
1. the article's way: `kubectl rollout restart deployment <name> -n <ns>` for one Deployment after the other, with
   the official kubectl binary (`article.py`, `kubectl.py`);
2. the floor: the official `kubernetes` client sending the same strategic-merge PATCH of
   `kubectl.kubernetes.io/restartedAt` to every Deployment from 10 threads, waiting for nothing (`baseline.py`);
3. the program: `run_restart` with maxConcurrent 10, without waitForRollout, and (reported apart) with it
   (`program.py`).
All run as the unprivileged user `restarter`, holding the program's documented ClusterRole
(`docs/restart-rbac.yaml`) plus `get` on Deployments, which `kubectl rollout restart` needs. The machine has 2 cores,
so nothing is measured side by side, and after every run the benchmark waits until all N rollouts are over and
the cluster is quiet before the next one starts (`bench.py`).

Two more scenarios: `slowstart` (200 Deployments of their own: a bad change's reach and 200 healthy rollouts, slow
start beside the fixed window, `scenarios/slowstart.py`) and `planning` (2N more Deployments outside the mesh: the
program beside the floor, and each way of listing timed alone, `scenarios/planning.py`). `make bench` runs all three.

Every run restarts all N from the same state: every Deployment runs one pod whose redirection mismatches the
injector's setting (and keeps one old ReplicaSet). Rolling all N back before each run would cost a second rollout
of N pods per run, as long as the measured one's; instead each run starts where the previous one left the pods,
and each run flips the injector first.

Requests are counted by the API server, not by a proxy (a Python proxy on the same 2 cores would slow what it
counts): see `counters.py`.

Usage: `python -m benchmarks.restart_bench [--deployments N | --quick] [--pairs 3] [--budget 480]
[--scenario NAME ...]`; prints markdown tables on stdout, progress on stderr. Every process it starts (the control
plane, the client process, kubectl) is stopped at the end, also on a failure, Ctrl-C or SIGTERM.
"""
