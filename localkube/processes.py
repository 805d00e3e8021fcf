"""Child processes of the test control plane: one process group each, logs on disk, always stopped.

A test run that fails, times out or is interrupted must not leave etcd or an API server behind (they keep
ports and CPU busy for the next run), so every process is also stopped by an `atexit` guard.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

_STOP_GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child may only call it. Linux only; elsewhere components may outlive a killed run.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
_live: set[Process] = set()
_live_lock = threading.Lock()


class Process:
    """One started component: stdout and stderr go to `log`; `stop()` is idempotent."""

    def __init__(self, name: str, command: Sequence[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            # Its own session: a Ctrl-C in the terminal reaches pytest only, which then stops us in order, and
            # killpg takes any child the component may fork.
            self._popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only a prctl call runs between fork and exec
            )
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The end of the log, to explain why a component died or never became ready."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within a few seconds."""
        try:
            if self.running():
                self._signal(signal.SIGTERM)
                try:
                    self._popen.wait(_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self._popen.wait()
        finally:
            with _live_lock:
                _live.discard(self)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)


def _die_with_parent() -> None:
    """Linux: the component gets SIGKILL when the thread that started it dies, even by SIGKILL.

    That covers what neither `stop()` nor atexit can: pytest killed by a CI timeout. (The kernel ties this to the
    starting *thread*, so start control planes from a thread that outlives them, e.g. pytest's main thread.)
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for process in leftovers:
        process.stop()
