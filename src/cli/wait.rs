//! `fthub wait RUN`: follow a run to a stage.

use super::Out;
use super::args::AppArg;

/// `fthub wait` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run id.
    run: String,
    /// Stage to wait for.
    #[arg(long = "for", default_value = "prod")]
    target: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    #[command(flatten)]
    app: AppArg,
}

/// Waits; a run that stops short, or a timeout, is a "no".
pub async fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    use fthub::commands::ops::{WaitError, progress_line, wait};
    match wait(
        &a.app.base(),
        a.app.code.as_deref(),
        &a.run,
        &a.target,
        std::time::Duration::from_secs(a.timeout),
    )
    .await
    {
        Ok(v) => {
            out.either(&v, || format!("{}\n", progress_line(&v["run"])));
            Ok(())
        }
        Err(WaitError::Ops(e)) => Err(e.into()),
        Err(e) => super::no(e.to_string()),
    }
}
