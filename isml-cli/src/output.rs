//! Standard output, for every command.
//!
//! Everything the tool prints on stdout goes through [`write_bytes`] (or the
//! `out!` / `outln!` macros), so that a reader that goes away
//! (`isml decode … | head -c0`) is handled in one place: the first write that
//! fails with a broken pipe marks stdout closed, later output is dropped, and
//! the command finishes with the exit code it would have had anyway. Stopping
//! at once instead would make the exit code depend on when the reader left.
//! Any other write error is an I/O failure (exit code 2).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Failure;

/// Set once a write has met a closed pipe.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `format!(...)` to stdout; evaluates to `Result<(), Failure>`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_bytes(format!($($arg)*).as_bytes())
    };
}

/// Writes `format!(...)` and a newline to stdout; evaluates to `Result<(), Failure>`.
macro_rules! outln {
    () => {
        $crate::output::write_bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_bytes(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub(crate) use {out, outln};

/// Writes `bytes` to stdout, unless its reader has gone away.
pub(crate) fn write_bytes(bytes: &[u8]) -> Result<(), Failure> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let result = std::io::stdout().lock().write_all(bytes);
    settle(result)
}

/// Flushes stdout; called once, when the command is done.
pub(crate) fn flush() -> Result<(), Failure> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let result = std::io::stdout().lock().flush();
    settle(result)
}

fn settle(result: std::io::Result<()>) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Failure::usage(format!("cannot write standard output: {e}"))),
    }
}
