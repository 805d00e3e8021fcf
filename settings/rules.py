"""The value rules the settings model enforces, and the one error format every check uses.

A message names the full config key, the bad value and what is allowed:
`aks-istio:cluster.systemPool.count: -1 is not allowed; expected a whole number from 1 to 1000`.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from typing import Any

PROJECT = "aks-istio"
"""The Pulumi project name (`Pulumi.yaml`), which is also the namespace of its config keys."""

# Matched whole (`fullmatch`) over ASCII only: `$` would accept a trailing newline and `\d`/`\w` non-ASCII
# digits and letters, which Azure and Kubernetes refuse or, worse, store.
_NUMBER = r"(?:0|[1-9][0-9]*)"
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
CLUSTER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?", re.ASCII)
RESOURCE_GROUP = re.compile(r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]", re.ASCII)
VM_SIZE = re.compile(r"Standard_[A-Za-z0-9_]+", re.ASCII)
RELEASE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,51}[a-z0-9])?", re.ASCII)
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
K8S_VERSION = re.compile(rf"{_NUMBER}\.{_NUMBER}(?:\.{_NUMBER})?", re.ASCII)
RELEASE_VERSION = re.compile(rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})", re.ASCII)
"""MAJOR.MINOR.PATCH without leading zeros (`01.030.3` is no release)."""
ZONE = re.compile(r"[123]", re.ASCII)
_DNS_SUBDOMAIN = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
DNS_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}$){_DNS_SUBDOMAIN}", re.ASCII)
"""An object name: lowercase DNS labels joined by dots, at most 253 characters."""
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)
_DOMAIN_COMPONENT = r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REPOSITORY = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*",
    re.ASCII,
)
"""A registry and repository without a tag (`docker.io/istio`, `example.azurecr.io/mirror/istio`,
`localhost:5000/istio`): the `name` of the distribution project's reference grammar, which Istio's `hub` is."""


class ConfigError(ValueError):
    """A stack setting is invalid; the message names the key, the value and what is allowed.

    Always one line: should a message ever quote something unescaped, its control characters are escaped here,
    so a newline in a setting never starts a second line in a log or a workflow command.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message if message.isprintable() else _escaped(message))


def _escaped(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def config_key(path: str) -> str:
    """The full config key of a path below the project namespace: `cluster.name` -> `aks-istio:cluster.name`."""
    return f"{PROJECT}:{path}"


def show(value: Any, limit: int = 200) -> str:
    """A value for a message: on one line (control characters escaped), and bounded."""
    text = f"'{value}'" if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def show_key(key: Any, limit: int = 100) -> str:
    """A key of a setting's path for a message: as it is when it is a short printable string, else like a value
    (`show`: quoted, escaped, bounded), so a key can neither start a line nor flood one."""
    if isinstance(key, str) and key and key.isprintable() and len(key) <= limit:
        return key
    return show(key, limit)


def show_names(names: Collection[str], limit: int = 10) -> str:
    """Names for a message, comma-separated: the first `limit` of them and how many there are in all."""
    shown = [show_key(name) for name in list(names)[:limit]]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(shown) + more


def not_allowed(name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{name}: {show(value)} is not allowed; expected {allowed}")


def unknown_key(
    name: str, key: str, allowed: Iterable[str], listed_as: str, shown: Callable[[str], str] = lambda k: k
) -> ConfigError:
    """`<name>: unknown setting; did you mean 'x'? <listed_as> a, b, c`: the closest allowed key first."""
    choices = sorted(allowed)
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean '{shown(close[0])}'? " if close else ""
    return ConfigError(f"{name}: unknown setting; {hint}{listed_as} {', '.join(shown(c) for c in choices)}")


def matches(pattern: re.Pattern[str], value: str) -> bool:
    """The whole value matches (never a prefix, never before a trailing newline)."""
    return pattern.fullmatch(value) is not None


def require_match(name: str, value: str, pattern: re.Pattern[str], allowed: str) -> None:
    if not matches(pattern, value):
        raise not_allowed(name, value, allowed)


def require_range(name: str, value: int, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise not_allowed(name, value, f"a whole number from {minimum} to {maximum}")


def require_choice(name: str, value: str, choices: Iterable[str]) -> None:
    allowed = tuple(choices)
    if value not in allowed:
        raise not_allowed(name, value, "one of " + ", ".join(allowed))


def require_count(name: str, items: Collection[Any], maximum: int, what: str) -> None:
    """At most `maximum` items: a plan, the state and a chart's values stay bounded whatever a stack file holds."""
    if len(items) > maximum:
        raise ConfigError(
            f"{name}: {len(items)} {what} given, which is not allowed; expected at most {maximum} "
            "(the limits are in docs/configuration.md)"
        )


def require_names(name: str, values: Iterable[str], pattern: re.Pattern[str], allowed: str) -> None:
    """Every item matches `pattern`, and none is listed twice."""
    items = list(values)
    for item in items:
        if not matches(pattern, item):
            raise not_allowed(name, item, allowed)
    repeated = sorted(item for item, count in Counter(items).items() if count > 1)
    if repeated:
        raise ConfigError(f"{name}: {show_names(repeated)} listed more than once")


def is_annotation_key(key: str) -> bool:
    """Kubernetes' rule for an annotation key: `[prefix/]name`, the prefix a DNS subdomain of at most 253
    characters, the name at most 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or re.fullmatch(_DNS_SUBDOMAIN, prefix, re.ASCII) is None):
        return False
    return matches(_QUALIFIED_NAME, name)


def preexisting(namespace: str) -> bool:
    """Namespaces every cluster already has (or AKS manages): the program cannot create them."""
    return namespace == "default" or namespace.startswith("kube-") or namespace == "gatekeeper-system"


AZURE_REGIONS: frozenset[str] = frozenset(
    {
        # Public cloud
        "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast", "austriaeast",
        "belgiumcentral", "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia",
        "centralus", "chilecentral", "denmarkeast", "eastasia", "eastus", "eastus2", "francecentral", "francesouth",
        "germanynorth", "germanywestcentral", "indonesiacentral", "israelcentral", "italynorth", "japaneast",
        "japanwest", "jioindiacentral", "jioindiawest", "koreacentral", "koreasouth", "malaysiawest",
        "mexicocentral", "newzealandnorth", "northcentralus", "northeurope", "norwayeast", "norwaywest",
        "polandcentral", "qatarcentral", "southafricanorth", "southafricawest", "southcentralus", "southeastasia",
        "southindia", "spaincentral", "swedencentral", "swedensouth", "switzerlandnorth", "switzerlandwest",
        "taiwannorth", "taiwannorthwest", "uaecentral", "uaenorth", "uksouth", "ukwest", "westcentralus",
        "westeurope", "westindia", "westus", "westus2", "westus3",
        # Early-access (EUAP) regions
        "centraluseuap", "eastus2euap",
        # Azure Government
        "usgovarizona", "usgovtexas", "usgovvirginia", "usdodcentral", "usdodeast",
        # Azure operated by 21Vianet
        "chinaeast", "chinaeast2", "chinaeast3", "chinanorth", "chinanorth2", "chinanorth3",
    }
)  # fmt: skip
"""What `azure-native:location` may be: the programmatic names of Microsoft's "Azure regions list"
(https://learn.microsoft.com/azure/reliability/regions-list) and of `az account list-locations --query [].name`,
as of 2026-12-02, with the sovereign clouds' regions (Azure Government, Azure operated by 21Vianet). A region
Azure opens later is refused until it is added here: the error says so."""


def check_location(location: object) -> str:
    """`location` if it names an Azure region; otherwise a ConfigError naming `azure-native:location`."""
    # Azure takes a region's display name and any case as well: `West Europe` is `westeurope`.
    name = str(location).strip().lower().replace(" ", "")
    if isinstance(location, str) and name in AZURE_REGIONS:
        return location
    close = difflib.get_close_matches(name.replace("-", ""), AZURE_REGIONS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"azure-native:location: {show(location)} is not allowed; expected an Azure region name such as westeurope "
        f"(settings/rules.py lists them, as of 2026-12-02: add a newer region there){hint}"
    )
