//! What the simulated devices and server say to each other. Every message
//! names its device and a number unique for that device and direction, so
//! that the ledger can tell which one a handler saw.

use isml_runtime::pubsub::Channel;

/// A reading, device to server, sent at least once.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5100, package = "isml.sim")]
pub struct Reading {
    #[isml(tag = 1)]
    pub device: u32,
    #[isml(tag = 2)]
    pub n: u64,
    /// Padding, so that budgets in bytes fill up.
    #[isml(tag = 3)]
    pub body: Vec<u8>,
}

/// A command, server to device, sent at least once.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5101, package = "isml.sim")]
pub struct Command {
    #[isml(tag = 1)]
    pub device: u32,
    #[isml(tag = 2)]
    pub n: u64,
}

/// A request, device to server, sent at least once: its handler must run
/// once.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5102, package = "isml.sim")]
pub struct Call {
    #[isml(tag = 1)]
    pub device: u32,
    #[isml(tag = 2)]
    pub n: u64,
}

/// The reply to [`Call`] and to [`Query`]: the request's numbers back.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5103, package = "isml.sim")]
pub struct Answer {
    #[isml(tag = 1)]
    pub device: u32,
    #[isml(tag = 2)]
    pub n: u64,
}

/// A request, server to device, sent at least once.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5104, package = "isml.sim")]
pub struct Query {
    #[isml(tag = 1)]
    pub device: u32,
    #[isml(tag = 2)]
    pub n: u64,
}

/// A value the server publishes on [`StatusChannel`].
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 0x5105, package = "isml.sim")]
pub struct Status {
    #[isml(tag = 1)]
    pub version: u64,
}

/// The channel every device subscribes to: retained, so that a device that
/// subscribes again after its session was lost gets the latest value first.
pub struct StatusChannel;

impl Channel for StatusChannel {
    type Message = Status;
    const ID: u32 = 0x51;
    const NAME: &'static str = "isml.sim.status";
    const RETAIN: bool = true;
    const KEYED: bool = false;
}
