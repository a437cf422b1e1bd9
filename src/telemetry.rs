//! Logging: `tracing` to stdout (the Functions host logs a custom handler's stderr as
//! errors, so ordinary lines go to stdout). `FTHUB_LOG` (or `RUST_LOG`) filters;
//! `FTHUB_LOG_FORMAT=json` gives one JSON object per line.

use tracing_subscriber::EnvFilter;

/// Whether output to a terminal (`tty`) may be coloured: only on a terminal, and never
/// with `NO_COLOR` set to anything but empty (no-color.org). The logs and the CLI share it.
pub fn colour_allowed(tty: bool) -> bool {
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init() {
    let filter = std::env::var("FTHUB_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("FTHUB_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let ansi = colour_allowed(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false);
    // Ignore "already set": tests and embedders may have installed one.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(ansi).compact().try_init()
    };
}
