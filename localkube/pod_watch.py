"""A list-then-watch loop over all pods, as a kubelet or informer runs it, delivering pods as JSON dicts.

Dicts, not `V1Pod`s: deserializing thousands of pods into models costs more than everything else the
kubelets do, and they only read a few fields.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3 import BaseHTTPResponse

from localkube.raw import read_json

Pod = dict[str, Any]
Handler = Callable[[str, Pod], None]

_LOG = logging.getLogger(__name__)
_WATCH_SECONDS = 300
_RETRY_SECONDS = 0.5
_PAGE = 500


class PodWatch:
    """Calls `handle(event_type, pod)` for every pod change in the cluster, from a background thread.

    Event types are ADDED, MODIFIED and DELETED. The watch resumes from the last resourceVersion it saw; when
    the server answers 410 Gone (that version was compacted) it lists again, reporting pods that vanished
    meanwhile as DELETED. `stop()` shuts the open watch connection down, so it returns at once.
    """

    def __init__(self, core: client.CoreV1Api, handle: Handler, on_error: Callable[[str], None]) -> None:
        self._core = core
        self._handle = handle
        self._on_error = on_error
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._response: BaseHTTPResponse | None = None
        self._known: dict[str, Pod] = {}
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Starts the loop and waits for the first full list to be delivered."""
        self._thread.start()
        if not self._synced.wait(timeout):
            raise TimeoutError("the pod watch did not complete its first list")

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._response is not None:
                self._response.shutdown()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        resource_version: str | None = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                    self._synced.set()
                resource_version = self._watch(resource_version)
            except Exception as exc:
                if self._stopped.is_set():
                    return
                if isinstance(exc, ApiException) and exc.status == 410:
                    resource_version = None
                    continue
                self._on_error(f"pod watch: {exc!r}")
                _LOG.warning("pod watch failed, retrying: %r", exc)
                self._stopped.wait(_RETRY_SECONDS)

    def _relist(self) -> str:
        seen: dict[str, Pod] = {}
        token: str | None = None
        while True:
            page = read_json(
                self._core.list_pod_for_all_namespaces(limit=_PAGE, _continue=token, _preload_content=False)
            )
            for pod in page["items"]:
                seen[pod["metadata"]["uid"]] = pod
            token = page["metadata"].get("continue")
            if not token:
                break
        for uid, pod in self._known.items():
            if uid not in seen:
                self._handle("DELETED", pod)
        self._known = seen
        for pod in seen.values():
            self._handle("ADDED", pod)
        return str(page["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str | None:
        """Follows one watch request; returns where to resume, or None when a list is needed."""
        response = self._core.list_pod_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=_WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(5, _WATCH_SECONDS + 30),
        )
        with self._lock:
            self._response = response
        try:
            if self._stopped.is_set():
                return resource_version
            for event in _events(response):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    # 410 Gone arrives as an event on an open watch, not as an HTTP status.
                    return None if obj.get("code") == 410 else resource_version
                resource_version = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                uid = obj["metadata"]["uid"]
                if kind == "DELETED":
                    self._known.pop(uid, None)
                else:
                    self._known[uid] = obj
                self._handle(kind, obj)
            return resource_version
        finally:
            with self._lock:
                self._response = None
            response.release_conn()


def _events(response: BaseHTTPResponse) -> Iterator[dict[str, Any]]:
    """One watch event per line of the chunked response; a line may span chunks."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
