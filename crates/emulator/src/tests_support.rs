//! Accounts for the unit tests: a Hub and Spokes in two subscriptions, one Spoke in
//! another tenant.

use crate::world::AccountConfig;

pub fn accounts() -> Vec<AccountConfig> {
    [
        ("hub", "swedencentral", "sub-hub", "rg-hub", "contoso"),
        (
            "dev-swedencentral",
            "swedencentral",
            "sub-dev",
            "rg-dev",
            "contoso",
        ),
        ("dev-eastus2", "eastus2", "sub-dev", "rg-dev", "contoso"),
        ("prod-eastus2", "eastus2", "sub-prod", "rg-prod", "fabrikam"),
    ]
    .into_iter()
    .map(|(name, region, sub, rg, tenant)| AccountConfig {
        name: name.into(),
        region: region.into(),
        subscription: sub.into(),
        resource_group: rg.into(),
        tenant: tenant.into(),
    })
    .collect()
}
