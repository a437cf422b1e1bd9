//! What the command-line commands do, apart from parsing their arguments (`src/cli/`).

pub mod approve;
pub mod demo;
pub mod init;
pub mod ops;
pub mod runs;
pub mod storage;
pub mod submit;
pub mod tables;
pub mod validate;

/// Writes `text` to stdout. A reader that went away (`fthub status --json | head -1`) ends
/// the process quietly with success, as Unix tools do, instead of panicking on the broken
/// pipe; any other write failure ends it with exit code 2.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            warn(&format!("fthub: cannot write the output: {e}"));
            std::process::exit(2)
        }
    }
}

/// Writes a line to stderr, ignoring a stderr that went away (`2>&1 | head -1`): progress
/// and warnings are never worth a panic.
pub fn warn(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// `println!` through [`emit`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`warn`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::commands::warn(&format!("{}", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
