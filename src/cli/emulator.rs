//! `fthub emulator`: the Azure OpenAI emulator on its own.

use std::path::PathBuf;

/// `fthub emulator` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 7072)]
    port: u16,
    /// JSON file with the accounts (`[{name, region, subscription, resource_group, tenant}]`);
    /// default: the built-in local topology.
    #[arg(long)]
    accounts: Option<PathBuf>,
}

/// Serves until stopped.
#[cfg(feature = "emulator")]
pub async fn run(a: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let accounts = match a.accounts {
        Some(p) => {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => fthub::local::emulator::builtin_accounts(),
    };
    let emu = fthub::local::emulator::Emulator::new(accounts, Default::default());
    fthub::local::emulator::serve(a.port, emu)
        .await
        .context("running the emulator")
}

/// A build without the emulator says so.
#[cfg(not(feature = "emulator"))]
pub async fn run(_: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "this fthub was built without the Azure OpenAI emulator (cargo feature `emulator`)"
    )
}
