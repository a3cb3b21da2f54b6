//! The link lab: a server and a cabinet over a shaped link, both sending
//! at-least-once messages as fast as the window lets them, for a number of
//! seconds; then a table of what was delivered, acknowledged, lost and
//! duplicated, the goodput and the latencies (docs/reliability.md, "Link
//! lab").
//!
//! ```text
//! cargo run --release -p isml-examples --bin link-lab -- --profile 2g --seconds 60
//! ```
//!
//! Options: `--profile 2g|gprs-bad|rs485-115200|wifi-flaky` (2g),
//! `--seconds N` (60), `--transport tcp|mem` (tcp), `--seed N` (1),
//! `--window BYTES` (four seconds of the link's rate, at least 16 KiB),
//! `--ack-delay MS` (the runtime's default).
//!
//! Exits with 1 when an acknowledged message was lost or a handler saw a
//! message twice, with 2 when messages were still unacknowledged at the
//! end, and with 3 on bad arguments or a failure to run.

use std::process::ExitCode;
use std::time::Duration;

use isml_examples::linklab::{self, LabConfig, LabTransport, default_window};
use isml_runtime::transport::impair::Profile;

const USAGE: &str = "usage: link-lab [--profile 2g|gprs-bad|rs485-115200|wifi-flaky] [--seconds N] \
     [--transport tcp|mem] [--seed N] [--window BYTES] [--ack-delay MS]";

fn parse(args: impl Iterator<Item = String>) -> Result<(LabConfig, u64), String> {
    let mut args = args.peekable();
    let mut profile = Profile::TwoG;
    let (mut seconds, mut seed) = (60u64, 1u64);
    let mut transport = LabTransport::Tcp;
    let mut window = None;
    let mut ack_delay = None;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |v: String, what: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{what}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--profile" => {
                let v = value()?;
                profile = v.parse().map_err(|e| format!("--profile: {e}"))?;
            }
            "--seconds" => seconds = number(value()?, "--seconds")?,
            "--seed" => seed = number(value()?, "--seed")?,
            "--transport" => {
                transport = value()?.parse().map_err(|e| format!("--transport: {e}"))?
            }
            "--window" => window = Some(number(value()?, "--window")?.max(1) as usize),
            "--ack-delay" => {
                ack_delay = Some(Duration::from_millis(number(value()?, "--ack-delay")?));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let mut config = LabConfig::new(profile, seed, seconds);
    config.transport = transport;
    config.window = window.unwrap_or_else(|| default_window(&config.link));
    config.ack_delay = ack_delay;
    Ok((config, seconds))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (config, seconds) = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(3);
        }
    };
    println!(
        "link-lab: {} over {} for {} s each way, window {} bytes",
        config.link.profile.map_or("custom", Profile::name),
        config.transport.name(),
        seconds,
        config.window
    );
    let report = match linklab::run(&config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("link-lab: {e}");
            return ExitCode::from(3);
        }
    };
    print!("{report}");
    let code = if report.lost() + report.duplicated() > 0 {
        eprintln!("link-lab: FAILED: acknowledged messages lost or delivered twice");
        1
    } else if report.unacknowledged() > 0 {
        eprintln!("link-lab: FAILED: messages not acknowledged by the end of the run");
        2
    } else {
        0
    };
    println!("{}", report.summary());
    ExitCode::from(code)
}
