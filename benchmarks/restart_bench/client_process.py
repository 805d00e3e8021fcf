"""The process the measured clients run in.

The measured clients run in a process of their own, as the program runs in Pulumi's provider host: in the
benchmark's process they would share the interpreter's lock with the played kubelets' and the injector's threads,
which are busy with the very pods the PATCHes create. A job is a module-level function (sent by reference) and
its keyword arguments; only plain data crosses the pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

Done = tuple[list[str], dict[str, float]]
"""What a job restarted (`Deployment/<namespace>/<name>`; empty: it does not say), and how long its phases took
(seconds by name)."""
Answer = tuple[float, float, list[str], dict[str, float]]
"""Wall seconds and CPU seconds of the client process, then the job's `Done`."""
Job = Callable[..., Done]


def _serve_jobs(connection: Connection) -> None:
    """The client process's loop: run each job sent, answer with its timing, stop on None or when the parent dies."""
    # Ctrl-C reaches the whole process group; the parent stops this process in its own clean-up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            sent = connection.recv()
        except EOFError:
            return
        if sent is None:
            return
        job, arguments = sent
        started, cpu = time.perf_counter(), time.process_time()
        try:
            restarted, phases = job(**arguments)
        except Exception as exc:
            connection.send(f"{type(exc).__name__}: {exc}")
            continue
        connection.send((time.perf_counter() - started, time.process_time() - cpu, restarted, phases))


class ClientProcess:
    """Context manager: a spawned process (not forked: this one runs threads) that runs the measured clients."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve_jobs, args=(theirs,), name="restart-bench-client", daemon=True)
        self._process.start()
        theirs.close()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def run(self, job: Job, arguments: dict[str, Any], timeout: float) -> Answer:
        self._connection.send((job, arguments))
        if not self._connection.poll(timeout):
            raise TimeoutError(f"the {job.__name__} run did not finish within {timeout:.0f} s")
        answer: Answer | str = self._connection.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"the {job.__name__} run failed: {answer}")
        return answer

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._connection.send(None)
        self._process.join(5)
        if self._process.is_alive():  # still inside a job: the run was interrupted or failed
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
