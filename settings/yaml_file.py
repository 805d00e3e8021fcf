"""YAML files as the Pulumi CLI reads them: the YAML 1.2 core schema, duplicate keys refused, size bounded.

PyYAML implements YAML 1.1, where unquoted `yes`, `on` and `off` are booleans; the Pulumi CLI (Go's yaml) reads them
as strings. So the resolvers here are YAML 1.2's core schema, with integers read as Go's yaml reads them (`1_200`,
`0b11`, `0o17`, `0x1F`, and `0777` octal), and a key given twice in one mapping is an error, as it is for the CLI.

Hostile input is bounded: a file is read up to `MAX_BYTES`; aliases may expand to `MAX_NODES` values and
`MAX_EXPANDED_CHARACTERS` of text at most (an alias bomb is refused when it is counted, before it is built); nesting
is at most `MAX_DEPTH` deep. Every refusal is one `ConfigError` line naming the file and, where there is one, the
line and column.
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
MAX_EXPANDED_CHARACTERS = 4 * MAX_BYTES

_CORE_SCHEMA: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)", "-+0123456789"),
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
            if not isinstance(key, str | int | float | bool | None):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """As the Pulumi CLI (Go's yaml) reads an integer: `_` ignored, `0b`/`0o`/`0x` and a leading `0` (octal)."""
        text = str(self.construct_scalar(node)).replace("_", "")
        if len(text) > 40:
            raise yaml.constructor.ConstructorError(None, None, "the number is too long", node.start_mark)
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
        for prefix, base in (("0b", 2), ("0o", 8), ("0x", 16)):
            if digits.startswith(prefix):
                return sign * int(digits[2:], base)
        return sign * int(digits, 8 if len(digits) > 1 and digits.startswith("0") else 10)

    def construct_unsupported(self, node: yaml.Node) -> Any:
        """YAML 1.1 types with no JSON form, which Pulumi passes config in (`!!timestamp`, `!!set`, `!!binary`,
        `!!omap`, `!!pairs`): refused where they stand, as the one line a stack file's error is."""
        kind = node.tag.rsplit(":", 1)[-1]
        raise yaml.constructor.ConstructorError(
            None, None, f"a value tagged !!{kind} is not supported; quote it as a string", node.start_mark
        )


for _tag, _pattern, _first in _CORE_SCHEMA:
    _CoreLoader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), list(_first))
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])
_CoreLoader.add_constructor("tag:yaml.org,2002:int", _CoreLoader.construct_yaml_int)
for _kind in ("timestamp", "set", "binary", "omap", "pairs"):
    _CoreLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _CoreLoader.construct_unsupported)


def _check_size(root: yaml.Node) -> None:
    """Counts the values and characters the document expands to (aliases included) and its depth, without
    expanding it: an alias of a long string counts its length each time it is used."""
    measured: dict[int, tuple[int, int]] = {}
    """id(node) -> (values, characters) it expands to; an alias is the same node, so each is measured once."""
    active: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
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
        values, characters = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        for child in children:
            child_values, child_characters = visit(child, depth + 1)
            values, characters = values + child_values, characters + child_characters
            if values > MAX_NODES:
                raise _TooBigError(f"expands to more than {MAX_NODES} values (aliases included)", node)
            if characters > MAX_EXPANDED_CHARACTERS:
                raise _TooBigError(
                    f"expands to more than {MAX_EXPANDED_CHARACTERS // (1 << 20)} MiB of text (aliases included)", node
                )
        active.discard(key)
        measured[key] = (values, characters)
        return measured[key]

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
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A tagged value PyYAML cannot build (`!!int x`, `!!timestamp foo`): the problem, not its traceback.
        raise ConfigError(
            f"{source}: a value cannot be read ({type(exc).__name__}: an explicit tag that does not fit?)"
        ) from None
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
