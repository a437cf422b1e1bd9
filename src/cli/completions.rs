//! `fthub completions SHELL`.

/// `fthub completions` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Prints the script.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut super::command(), "fthub", &mut buf);
    fthub::commands::emit(&String::from_utf8_lossy(&buf));
    Ok(())
}
