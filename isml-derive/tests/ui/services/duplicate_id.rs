use isml_runtime::rpc::{Call, Status};

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "demo.v1")]
struct Ping {
    #[isml(tag = 1)]
    seq: u32,
}

#[isml_runtime::service(package = "demo.v1")]
trait Pinger {
    #[rpc(id = 1)]
    async fn ping(&self, call: Call, req: Ping) -> Result<Ping, Status>;
    #[rpc(id = 1)]
    async fn pong(&self, call: Call, req: Ping) -> Result<Ping, Status>;
    #[rpc(id = 0)]
    async fn zero(&self, call: Call, req: Ping);
}

fn main() {}
