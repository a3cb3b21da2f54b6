//! The load generator's isml side: isml clients of the isml broker.
//! (Waits for the pub/sub runtime API of the `pubsub` branch.)

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{Handle, Plan, Qos, Sink};

const MISSING: &str = "the isml broker is not available in this build yet";

/// Runs the isml broker on `127.0.0.1:port` until the process exits.
pub(crate) fn run_broker(_port: u16) {
    eprintln!("{MISSING}");
    std::process::exit(1);
}

/// A subscriber to channel `channel` that records into `sink`.
pub(crate) async fn subscriber(
    _port: u16,
    _id: &str,
    _channel: u32,
    _sink: Sink,
) -> Result<Handle, String> {
    Err(MISSING.into())
}

/// A publisher to channel `channel` that starts at once and runs until `stop`.
pub(crate) async fn publisher(
    _port: u16,
    _id: &str,
    _channel: u32,
    _q: Qos,
    _size: usize,
    _plan: Plan,
    _stop: Arc<AtomicBool>,
) -> Result<Handle, String> {
    Err(MISSING.into())
}
