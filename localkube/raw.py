"""Raw API responses (`_preload_content=False`): JSON dicts instead of models, and connections given back.

The harness reads only a few fields of each object; building pydantic models of thousands of pods would cost
more than the rest of the work, and some responses (a pod Binding) do not even deserialize in some client
versions. A raw response must be read to the end and released, or its pooled connection is lost.

Typed `Any`: the client's annotations name the model even when `_preload_content=False` returns the raw response.
"""

from __future__ import annotations

import json
from typing import Any


def read_json(response: Any) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(response.data)
        return document
    finally:
        response.release_conn()


def drain(response: Any) -> None:
    try:
        response.data  # noqa: B018 - reading to the end is what lets the connection be reused
    finally:
        response.release_conn()
