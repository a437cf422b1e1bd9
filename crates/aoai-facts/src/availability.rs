//! Where Azure accepts a deployment of a fine-tuned model: per base-model family and
//! deployment type (SKU), the regions documented on Microsoft Learn. Shipped as data
//! (`data/availability.json`, with its sources and the date they were read), overridable
//! with `FTHUB_AVAILABILITY`, and checked when a topology loads and before a promotion, so
//! fthub refuses what Azure would refuse — with the table's source in the message.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The table shipped with fthub.
pub const BUILT_IN: &str = include_str!("../../../data/availability.json");

/// The availability table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Availability {
    /// Where the table comes from.
    pub source: String,
    /// When it was read.
    pub checked: String,
    /// Family → SKU → regions (`*`: every Azure OpenAI region).
    pub deployments: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// Why a deployment would be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The table does not know the model's family.
    #[error("fine-tuned {model} is not in the availability table (source: {table})")]
    UnknownModel {
        /// The model.
        model: String,
        /// The table's source.
        table: String,
    },
    /// The family is known, the deployment type or region is not offered.
    #[error(
        "a {sku} deployment of fine-tuned {family} is not offered in {region}: {sku} is offered in {offered} (source: {table}, checked {checked})"
    )]
    NotOffered {
        /// Family.
        family: String,
        /// SKU.
        sku: String,
        /// Region.
        region: String,
        /// Where it is offered.
        offered: String,
        /// The table's source.
        table: String,
        /// When it was read.
        checked: String,
    },
}

/// SKU names as the docs, the CLI and ARM spell them, mapped to the table's.
fn canonical_sku(sku: &str) -> String {
    match sku.to_ascii_lowercase().as_str() {
        "standard" => "Standard".into(),
        "globalstandard" => "GlobalStandard".into(),
        "datazonestandard" => "DataZoneStandard".into(),
        "developertier" | "developer" => "DeveloperTier".into(),
        "provisionedmanaged" => "ProvisionedManaged".into(),
        "globalprovisionedmanaged" => "GlobalProvisionedManaged".into(),
        other => other.to_owned(),
    }
}

impl Availability {
    /// The table shipped with fthub.
    ///
    /// # Panics
    /// Never at run time: the shipped table is parsed by a unit test.
    pub fn built_in() -> Self {
        Self::from_json(BUILT_IN).unwrap_or_else(|e| panic!("data/availability.json: {e}"))
    }

    /// A table from JSON of the shipped shape.
    ///
    /// # Errors
    /// Not JSON of that shape.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The family a model name belongs to: a fine-tuned name's base
    /// (`gpt-4.1-mini-2025-04-14.ft-…` → `gpt-4.1-mini`), the longest family the table knows
    /// that the name starts with.
    pub fn family_of(&self, model: &str) -> Option<&str> {
        let base = model.split(".ft-").next().unwrap_or(model);
        self.deployments
            .keys()
            .filter(|f| base == f.as_str() || base.starts_with(&format!("{f}-")))
            .max_by_key(|f| f.len())
            .map(String::as_str)
    }

    /// Whether Azure offers a `sku` deployment of fine-tuned `model` in `region`.
    ///
    /// # Errors
    /// [`Unavailable`], naming what is offered and the table's source.
    pub fn check(&self, model: &str, sku: &str, region: &str) -> Result<(), Box<Unavailable>> {
        let family = self.family_of(model).ok_or_else(|| {
            Box::new(Unavailable::UnknownModel {
                model: model.to_owned(),
                table: self.source.clone(),
            })
        })?;
        let sku = canonical_sku(sku);
        let regions = self.deployments[family].get(&sku);
        let ok =
            regions.is_some_and(|r| r.iter().any(|x| x == "*" || x.eq_ignore_ascii_case(region)));
        if ok {
            return Ok(());
        }
        let offered = match regions {
            Some(r) if !r.is_empty() => r.join(", "),
            _ => "no region".into(),
        };
        Err(Box::new(Unavailable::NotOffered {
            family: family.to_owned(),
            sku,
            region: region.to_owned(),
            offered,
            table: self.source.clone(),
            checked: self.checked.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_refuses_what_azure_refuses_and_names_what_it_offers() {
        let t = Availability::built_in();
        assert!(t.source.contains("MicrosoftDocs/azure-ai-docs"));
        let ft = "gpt-4.1-mini-2025-04-14.ft-0123";
        assert_eq!(t.family_of(ft), Some("gpt-4.1-mini"));
        assert_eq!(t.family_of("gpt-4.1-2025-04-14"), Some("gpt-4.1"));
        assert!(t.check(ft, "Standard", "swedencentral").is_ok());
        assert!(t.check(ft, "standard", "northcentralus").is_ok());
        let e = t.check(ft, "Standard", "eastus2").expect_err("not offered");
        let text = e.to_string();
        assert!(text.contains("northcentralus, swedencentral"), "{text}");
        assert!(text.contains("checked"), "{text}");
        assert!(
            t.check(ft, "GlobalStandard", "eastus2").is_ok(),
            "every region"
        );
        assert!(t.check(ft, "developertier", "westus3").is_ok());
        assert!(
            t.check("gpt-4o-2024-08-06.ft-1", "Developer", "eastus2")
                .is_err()
        );
        assert!(matches!(
            t.check("llama-3.ft-1", "Standard", "eastus2")
                .map_err(|e| *e),
            Err(Unavailable::UnknownModel { .. })
        ));
    }
}
