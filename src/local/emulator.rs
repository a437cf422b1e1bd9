//! The Azure OpenAI emulator (the `fthub-emulator` crate), with the accounts of the built-in
//! local topology.

pub use fthub_emulator::*;

/// The built-in local topology's accounts ([`crate::domain::topology::LOCAL_ACCOUNTS`]).
pub fn builtin_accounts() -> Vec<world::AccountConfig> {
    crate::domain::topology::LOCAL_ACCOUNTS
        .iter()
        .map(|(name, region, sub, rg, tenant)| world::AccountConfig {
            name: (*name).into(),
            region: (*region).into(),
            subscription: (*sub).into(),
            resource_group: (*rg).into(),
            tenant: (*tenant).into(),
        })
        .collect()
}
