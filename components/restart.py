"""Where `SidecarRestartProvider` lived before the restart became its own layer (`restart/`).

Every stack's state holds the provider pickled by reference as `components.restart.SidecarRestartProvider`,
and the engine unpickles that copy to diff, update and delete the resource: this name must keep importing.
"""

from restart.resource import SidecarRestart, SidecarRestartArgs, SidecarRestartProvider

__all__ = ["SidecarRestart", "SidecarRestartArgs", "SidecarRestartProvider"]
