"""Azure region names: what `azure-native:location` may be.

Source: the programmatic names of Microsoft's "Azure regions list"
(https://learn.microsoft.com/azure/reliability/regions-list) and of `az account list-locations --query [].name`,
as of 2026-12-02, with the sovereign clouds' regions (Azure Government, Azure operated by 21Vianet). A region
Azure opens later is refused until it is added here: the error says so.
"""

from __future__ import annotations

import difflib

from settings.rules import ConfigError, show

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
        f"(settings/azure_regions.py lists them, as of 2026-12-02: add a newer region there){hint}"
    )
