use isml_runtime::rpc::{Call, Sink, Status};

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "demo.v1")]
struct WatchSlot {
    #[isml(tag = 1)]
    slot: u8,
}

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 2, package = "demo.v1")]
struct SlotReading {
    #[isml(tag = 1)]
    watts: u32,
}

#[isml_runtime::service(package = "demo.v1")]
trait Watcher {
    #[rpc(id = 1, once)]
    async fn read(&self, call: Call, req: WatchSlot) -> Result<SlotReading, Status>;
    #[rpc(id = 2, once)]
    async fn watch(&self, call: Call, req: WatchSlot, out: Sink<SlotReading>) -> Result<(), Status>;
    #[rpc(id = 3, once = true)]
    async fn poke(&self, call: Call, req: WatchSlot);
}

fn main() {}
