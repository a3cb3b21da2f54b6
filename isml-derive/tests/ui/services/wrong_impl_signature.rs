use isml_runtime::rpc::{Call, Status};

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "demo.v1")]
struct StartCharging {
    #[isml(tag = 1)]
    slot: u8,
}

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 2, package = "demo.v1")]
struct ChargeStarted {
    #[isml(tag = 1)]
    session: u32,
}

#[isml_runtime::service(package = "demo.v1")]
trait Charger {
    #[rpc(id = 1)]
    async fn start_charging(&self, call: Call, req: StartCharging) -> Result<ChargeStarted, Status>;
    #[rpc(id = 2)]
    async fn stop_charging(&self, call: Call, req: StartCharging) -> Result<ChargeStarted, Status>;
}

struct Cabinet;

impl Charger for Cabinet {
    // The wrong request type.
    async fn start_charging(&self, _call: Call, req: ChargeStarted) -> Result<ChargeStarted, Status> {
        Ok(req)
    }

    // The call argument is missing.
    async fn stop_charging(&self, req: StartCharging) -> Result<ChargeStarted, Status> {
        Ok(ChargeStarted { session: req.slot.into() })
    }
}

fn main() {}
