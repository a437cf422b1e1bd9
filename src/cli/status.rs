//! `fthub status [WHAT]`: runs, a run, projects, environments, endpoints, capacity, audit.

use fthub::commands::tables;

use super::Out;
use super::args::AppArg;

/// `fthub status` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run id, or `projects`, `projects/NAME`, `environments`, `endpoints`, `capacity`,
    /// `audit`, `audit/RUN`.
    what: Option<String>,
    #[command(flatten)]
    app: AppArg,
    /// Read straight from storage instead of the app (same views as the API).
    #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
    storage: Option<String>,
}

/// The Status API path for `what`.
fn path_of(what: Option<&str>) -> String {
    match what {
        None => "runs".to_owned(),
        Some(w @ ("environments" | "endpoints" | "audit" | "projects" | "capacity")) => {
            w.to_owned()
        }
        Some(p) if p.starts_with("projects/") || p.starts_with("audit/") => p.to_owned(),
        Some(id) => format!("runs/{id}"),
    }
}

/// Shows one view; "not found" is a no.
pub async fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    let path = path_of(a.what.as_deref());
    let v =
        super::args::status_view(a.storage.as_deref(), &a.app, &path, &Default::default()).await?;
    if v["error"] == "not_found" {
        let what = a.what.as_deref().unwrap_or("runs");
        return super::no(if path.starts_with("runs/") {
            format!("no run {what}; `fthub runs list` lists them")
        } else {
            format!("no {what}")
        });
    }
    let c = out.colour();
    out.either(&v, || match path.as_str() {
        "runs" => tables::runs(&v, c),
        "projects" => tables::projects(&v),
        "environments" => tables::environments(&v, c),
        "endpoints" => tables::endpoints(&v),
        "capacity" => tables::capacity(&v),
        "audit" => tables::audit(&v),
        p if p.starts_with("audit/") => tables::audit(&v),
        p if p.starts_with("projects/") => tables::project(&v, c),
        _ => tables::run_detail(&v, c),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_reads_its_view_and_anything_else_is_a_run() {
        assert_eq!(path_of(None), "runs");
        assert_eq!(path_of(Some("capacity")), "capacity");
        assert_eq!(path_of(Some("projects/alpha")), "projects/alpha");
        assert_eq!(path_of(Some("audit/r1")), "audit/r1");
        assert_eq!(path_of(Some("alpha-s1-0123abcd")), "runs/alpha-s1-0123abcd");
    }
}
