//! `fthub keygen`: an approver's key pair, and optionally its place in a topology file.

use std::path::PathBuf;

use anyhow::Context as _;

use super::Out;

/// `fthub keygen` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Approver name.
    #[arg(long)]
    name: String,
    /// Directory for the key file.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Add the approver to this topology file (JSON), for `--env`.
    #[arg(long, requires = "env")]
    topology: Option<PathBuf>,
    /// The environment the approver approves (`test` or `prod`).
    #[arg(long, requires = "topology")]
    env: Option<String>,
}

/// Writes NAME.key and prints (or records) the public key.
pub fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    // The name becomes a file name: no path separators, nothing hidden.
    if a.name.is_empty()
        || a.name.starts_with('.')
        || !a
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        anyhow::bail!(
            "--name {:?}: use letters, digits, '.', '_' and '-' (it names the key file)",
            a.name
        );
    }
    if let Some(env) = &a.env
        && !matches!(env.as_str(), "test" | "prod")
    {
        anyhow::bail!("--env {env:?}: approvers approve test or prod (dev takes no approvals)");
    }
    let (secret, public) = fthub::domain::approval::generate_key()
        .map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    // Check the topology edit first, so a refusal leaves no orphan key behind.
    let edited = match (&a.topology, &a.env) {
        (Some(path), Some(env)) => Some((path, add_approver(path, env, &a.name, &public)?)),
        _ => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join(format!("{}.key", a.name));
    write_secret(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    if let Some((topology, text)) = &edited {
        std::fs::write(topology, text)
            .with_context(|| format!("writing {}", topology.display()))?;
    }
    let v = serde_json::json!({"name": a.name, "public_key": public, "key_file": path});
    out.either(&v, || match &edited {
        Some((topology, _)) => format!(
            "{} approves {} in {}; secret key in {} — keep it private\n",
            a.name,
            a.env.as_deref().unwrap_or("?"),
            topology.display(),
            path.display()
        ),
        None => format!(
            "{{\"name\": \"{}\", \"public_key\": \"{public}\"}}\n",
            a.name
        ),
    });
    if edited.is_none() && !out.json() {
        fthub::errln!(
            "Secret key written to {} — keep it private; add the line above to the approvers of an environment (or use --topology FILE --env ENV).",
            path.display()
        );
    }
    Ok(())
}

/// The topology text with the approver added to `env` (refused if the name is taken there).
fn add_approver(
    path: &std::path::Path,
    env: &str,
    name: &str,
    public: &str,
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let list = v
        .pointer_mut(&format!("/environments/{env}/approvers"))
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no environment {env:?} with approvers (environments/{env}/approvers)",
                path.display()
            )
        })?;
    if list.iter().any(|a| a["name"] == name) {
        return super::no(format!(
            "{name} already approves {env} in {}",
            path.display()
        ));
    }
    list.push(serde_json::json!({"name": name, "public_key": public}));
    let text = serde_json::to_string_pretty(&v)? + "\n";
    // What the pipeline will load must stay loadable.
    fthub::domain::topology::Topology::from_json(
        &text.replace(fthub::app::EMULATOR_PLACEHOLDER, "http://127.0.0.1"),
    )
    .with_context(|| format!("{} would no longer be a valid topology", path.display()))?;
    Ok(text)
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}
