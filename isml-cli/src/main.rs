//! The `isml` command-line tool: check, format and compile schemas, encode and
//! decode messages as JSON, check compatibility between versions, report
//! wire costs, and serve, publish to and subscribe to channels.
//!
//! Exit codes: 0 success; 1 a check failed (`check`, `compat`, `fmt --check`)
//! or the input data is invalid (JSON, bytes, schema errors); 2 usage errors
//! (bad arguments, unknown message names) and I/O errors (missing files). A
//! closed standard output is not an error (see [`output`]).

// Every byte for stdout goes through `output`, which handles a closed pipe.
#![deny(clippy::print_stdout)]

mod auth;
mod cli;
mod codec;
mod commands;
mod describe;
mod frames;
mod output;
mod pubsub;
mod serve;
mod served;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    /// 1: invalid input or a failed check; 2: usage or I/O.
    code: u8,
    /// What to print on stderr.
    message: String,
    /// Print `message` as is (rendered diagnostics), without `error: `.
    raw: bool,
}

impl Failure {
    /// Invalid input data or a failed check (exit code 1).
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
            raw: false,
        }
    }

    /// A usage or I/O error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
            raw: false,
        }
    }

    /// Rendered schema diagnostics (exit code 1).
    pub(crate) fn diagnostics(d: &isml_schema::Diagnostics) -> Failure {
        Failure {
            code: 1,
            message: d.render(),
            raw: true,
        }
    }
}

/// The result of a command: the exit code to use on success paths that still
/// report a failed check (1), or a [`Failure`].
pub(crate) type Outcome = Result<u8, Failure>;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = commands::run(cli);
    // Flushed before any error is printed, so that stdout and stderr stay in order.
    let flushed = output::flush();
    let outcome = outcome.and_then(|code| flushed.map(|()| code));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let mut err = std::io::stderr().lock();
            if f.raw {
                let _ = write!(err, "{}", f.message);
            } else {
                let _ = writeln!(err, "error: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
