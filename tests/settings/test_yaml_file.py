"""Stack and operator files read as the Pulumi CLI reads them (YAML 1.2), with every refusal one clear line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from settings.rules import ConfigError
from settings.stack import stack_config, stack_settings
from settings.yaml_file import MAX_BYTES, load_yaml, read_yaml_file

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)


def test_unquoted_yes_and_on_are_strings_and_numbers_read_as_the_pulumi_cli_reads_them() -> None:
    text = "a: yes\nb: on\nc: off\nd: true\ne: 0777\nf: 0o17\ng: 2026-12-01\nh: ~\ni: 1_200\nj: 1e3\n"
    assert load_yaml(text, "f") == {
        "a": "yes", "b": "on", "c": "off", "d": True, "e": 0o777, "f": 15, "g": "2026-12-01", "h": None,
        "i": 1200, "j": 1000.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!int x", "a value cannot be read"),
        ("a: !!timestamp foo", "a value tagged !!timestamp is not supported"),
        ("a: !!bool maybe", "a value cannot be read"),
        ("? [a]: 1", "a mapping key must be a plain value"),
        ("a: " + "9" * 5000, "the number is too long"),
        ("big: &x " + "a" * 400_000 + "\nl: [" + ",".join(["*x"] * 20) + "]", "expands to more than 4 MiB of text"),
    ],
    ids=["bad-int-tag", "bad-timestamp", "bad-bool", "list-as-key", "huge-number", "aliased-long-string"],
)
def test_values_that_cannot_be_built_are_one_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load_yaml(text, "f.yaml")
    assert "\n" not in str(caught.value)


def write_stack(tmp_path: Path, text: str, stack: str = "dev") -> Path:
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return tmp_path


def test_a_stack_file_with_yes_is_refused_as_a_boolean(tmp_path: Path) -> None:
    root = write_stack(
        tmp_path, "config:\n  azure-native:location: westeurope\n  aks-istio:istio:\n    cni:\n      enabled: yes\n"
    )
    with pytest.raises(ConfigError, match=r"aks-istio:istio.cni.enabled: 'yes' is not allowed; expected true or false"):
        stack_settings("dev", root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config:\n  a: [1, 2\n", r"^Pulumi.dev.yaml:3:1: while parsing a flow sequence expected ',' or ']'"),
        (
            "config:\n\taks-istio:mesh: {}\n",
            r"^Pulumi.dev.yaml:2:1: .*found character '\\t' that cannot start any token$",
        ),
        ("config:\n  a: 1\n  a: 2\n", r"^Pulumi.dev.yaml:3:3: the key 'a' is given twice in one mapping$"),
        ("- config\n- other\n", r"^Pulumi.dev.yaml: expected a mapping with a `config:` key, got a list$"),
        ("config: [a]\n", r"^Pulumi.dev.yaml: `config:` must be a mapping"),
    ],
    ids=["syntax", "tab", "duplicate-key", "list-shaped", "config-not-a-mapping"],
)
def test_a_broken_stack_file_is_one_line_with_file_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        stack_config("dev", write_stack(tmp_path, text))
    assert "\n" not in str(caught.value)
    assert caught.value.__suppress_context__ or caught.value.__cause__ is None, "no chained traceback"


def test_an_alias_bomb_is_refused_within_a_second(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"expands to more than 100000 values"):
        stack_config(
            "dev",
            write_stack(tmp_path, "config:\n  x:\n" + "".join("    " + line + "\n" for line in BOMB.splitlines())),
        )
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "[" * 200 + "]" * 200, "nested more than 64 levels deep"),
        ("a: " + "[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("a: &x [*x]", "refers to itself through an alias"),
        ("a: 1\0", "contains a NUL character"),
    ],
    ids=["deep", "very-deep", "self-reference", "nul"],
)
def test_hostile_documents_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_yaml(text, "f.yaml")


def test_files_are_bounded_regular_utf8(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError, match=r"^big.yaml: refused: larger than 1024 KiB$"):
        read_yaml_file(big, "big.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("a: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"^latin.yaml: not UTF-8 text \(byte 7\)$"):
        read_yaml_file(latin, "latin.yaml")
    with pytest.raises(ConfigError, match=r"^zero: not a regular file$"):
        read_yaml_file(Path("/dev/zero"), "zero")
