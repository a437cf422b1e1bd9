//! The environments a model is promoted through, in order: Dev, then Test, then Prod.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::run::Stage;

/// One environment. Serialised as `dev`, `test`, `prod` (also as JSON map keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Env {
    /// Promoted automatically when the evaluation passes.
    Dev,
    /// Promoted on a signed approval, after Dev.
    Test,
    /// Promoted on a signed approval, after Test.
    Prod,
}

impl Env {
    /// Every environment, in promotion order.
    pub const ALL: [Env; 3] = [Env::Dev, Env::Test, Env::Prod];

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Test => "test",
            Env::Prod => "prod",
        }
    }

    /// The run stage reached when this environment is healthy.
    pub fn stage(self) -> Stage {
        match self {
            Env::Dev => Stage::Dev,
            Env::Test => Stage::Test,
            Env::Prod => Stage::Prod,
        }
    }

    /// The environment a run must serve in before an approval may promote it here; `None`
    /// for Dev, which takes no approvals.
    pub fn requires(self) -> Option<Env> {
        match self {
            Env::Dev => None,
            Env::Test => Some(Env::Dev),
            Env::Prod => Some(Env::Test),
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an environment: use dev, test or prod")]
pub struct UnknownEnv(pub String);

impl FromStr for Env {
    type Err = UnknownEnv;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Env::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| UnknownEnv(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_parse_print_and_order_as_promotion_does() {
        for e in Env::ALL {
            assert_eq!(e.name().parse::<Env>(), Ok(e));
            assert_eq!(serde_json::to_string(&e).expect("json"), format!("\"{e}\""));
        }
        assert!(Env::Dev < Env::Test && Env::Test < Env::Prod);
        assert_eq!(Env::Prod.requires(), Some(Env::Test));
        let err = "Prod".parse::<Env>().expect_err("case matters");
        assert!(err.to_string().contains("dev, test or prod"), "{err}");
        let map: std::collections::BTreeMap<Env, u8> =
            serde_json::from_str(r#"{"prod": 1, "dev": 2}"#).expect("keys");
        assert_eq!(
            map.keys().copied().collect::<Vec<_>>(),
            [Env::Dev, Env::Prod]
        );
    }
}
