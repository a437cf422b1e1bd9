//! `fthub init DIR`: a function app `fthub dev` runs at once.

use std::path::PathBuf;

use super::Out;

/// `fthub init` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to create (or an empty one).
    dir: PathBuf,
}

/// Scaffolds and says what to do next.
pub fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    let s = fthub::commands::init::init(&a.dir)?;
    let approvers: Vec<serde_json::Value> = s
        .approvers
        .iter()
        .map(|(env, name, key)| {
            serde_json::json!({"environment": env.name(), "approver": name, "key": a.dir.join(key)})
        })
        .collect();
    let v = serde_json::json!({"dir": a.dir, "files": s.files, "approvers": approvers});
    out.either(&v, || {
        let d = a.dir.display();
        let mut t = format!("created the function app in {d} ({} files)\n", s.files.len());
        for (env, name, key) in &s.approvers {
            t.push_str(&format!(
                "  {env} approver {name}: key {} (secret; keys/ is git-ignored)\n",
                a.dir.join(key).display()
            ));
        }
        t.push_str(&format!(
            "\nnext:\n  cd {d} && fthub dev          # the host, the emulator and the dashboard\n  \
             fthub submit DIR --project NAME --home {d}/.fthub   # in another terminal\n  \
             fthub approve RUN --env test --approver quality-lead --key {d}/keys/quality-lead.key --home {d}/.fthub\n"
        ));
        t
    });
    Ok(())
}
