"""Makes the control-plane fixtures available to the tests in this folder.

(`pytest_plugins` is only allowed in the root conftest; registering `tests.controlplane.plugin` there would make
these fixtures available everywhere.)
"""

from tests.controlplane.plugin import cluster, control_plane, kube_binaries, namespaces

__all__ = ["cluster", "control_plane", "kube_binaries", "namespaces"]
