"""YAML files as the Pulumi CLI reads them: the YAML 1.2 core schema, duplicate keys refused, size bounded.

PyYAML implements YAML 1.1, where unquoted `yes`, `on` and `off` are booleans and `0777` is octal; the Pulumi CLI
(Go's yaml.v3) reads them as the strings `yes`, `on`, `off` and the number 777. So the resolvers here are YAML 1.2's
core schema, and a key given twice in one mapping is an error, as it is for the CLI. Hostile input is bounded: a
file is read up to `MAX_BYTES`, aliases may expand to `MAX_NODES` nodes at most (an alias bomb is refused when it is
counted, before it is built), nesting is at most `MAX_DEPTH` deep. Every refusal is one `ConfigError` line naming
the file and, where there is one, the line and column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from settings.rules import ConfigError

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64

_CORE_SCHEMA: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
]


class _CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema resolvers and no duplicate keys."""

    # Replaces the inherited YAML 1.1 resolvers (filled below); PyYAML declares it a plain class attribute.
    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)  # YAML 1.2: a leading zero is no octal


for _tag, _pattern, _first in _CORE_SCHEMA:
    _CoreLoader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), list(_first))
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])
_CoreLoader.add_constructor("tag:yaml.org,2002:int", _CoreLoader.construct_yaml_int)


def _check_size(root: yaml.Node) -> None:
    """Counts the values the document expands to (aliases included) and its depth, without expanding it."""
    measured: dict[int, int] = {}
    """id(node) -> how many values it expands to; an alias is the same node, so each is counted once."""
    active: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _TooBigError(f"is nested more than {MAX_DEPTH} levels deep", node)
        key = id(node)
        if key in measured:
            return measured[key]
        if key in active:
            raise _TooBigError("refers to itself through an alias", node)
        active.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        total = 1
        for child in children:
            total += visit(child, depth + 1)
            if total > MAX_NODES:
                raise _TooBigError(f"expands to more than {MAX_NODES} values (aliases included)", node)
        active.discard(key)
        measured[key] = total
        return total

    visit(root, 0)


class _TooBigError(Exception):
    def __init__(self, problem: str, node: yaml.Node) -> None:
        super().__init__(problem)
        self.node = node


def _where(source: str, mark: Any) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


def load_yaml(text: str, source: str) -> Any:
    """One YAML document, as the Pulumi CLI reads it; a ConfigError of one line for anything else."""
    if "\0" in text:
        raise ConfigError(f"{source}: not a YAML file (it contains a NUL character)")
    loader = _CoreLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except _TooBigError as exc:
        raise ConfigError(f"{_where(source, exc.node.start_mark)}: refused: the document {exc}") from None
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ConfigError(f"{_where(source, exc.problem_mark or exc.context_mark)}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML ({type(exc).__name__})") from None
    except RecursionError:
        raise ConfigError(f"{source}: refused: nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml_file(path: Path, source: str) -> Any:
    """A regular UTF-8 file of at most MAX_BYTES, read as one YAML document (`source` names it in errors)."""
    try:
        if not path.is_file():
            raise ConfigError(f"{source}: not a regular file")
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{source}: refused: larger than {MAX_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start + 1})") from None
    return load_yaml(text, source)
