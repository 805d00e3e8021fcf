"""The aks-istio policy pack: the NET_ADMIN guard. Run with `pulumi preview --policy-pack policy`.

`config.cni-off.json` beside this file disables only the CNI rule, for a reviewed change that turns
the Istio CNI off on purpose: `--policy-pack-config policy/config.cni-off.json` (CI passes it when
the `POLICY_PACK_CONFIG` variable names it).

Registration only; the rules live in `net_admin_guard.py`. Pulumi runs this directory as a script,
which puts it on `sys.path`, so the rules import as a top-level module.
"""

from net_admin_guard import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="aks-istio-net-admin-guard",
    policies=list(POLICIES),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Keeps NET_ADMIN and NET_RAW inside istio-system and the kube-* namespaces, "
    "and the Istio install on the CNI plugin that makes that possible.",
)
