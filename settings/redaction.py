"""Messages that never show a secret config value: `pulumi config set --secret` must stay secret in errors too."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from settings.rules import show


def redacted(message: str, secrets: Iterable[Any], secret_keys: Iterable[str]) -> str:
    """`message` with every value of `secrets` shown as `[secret]`; a refused value of a secret key too."""
    for key in secret_keys:
        if message.startswith(key):
            message = _REFUSED_VALUE.sub(r"\1[secret]\2", message, count=1)
    texts = sorted({text for value in secrets for text in _scalars(value) if len(text) >= 3}, key=len, reverse=True)
    for text in texts:
        # `show` bounds a long value, so a message may hold only its beginning: that goes too.
        for form in (show(text), text, repr(text)[1:-1], text[:150]):
            message = message.replace(form, "[secret]")
    return message


_REFUSED_VALUE = re.compile(r"^([^:]+:[^:]+: ).*?( is not (?:allowed|supported))")


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):  # the keys are setting names, which the message needs
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)
