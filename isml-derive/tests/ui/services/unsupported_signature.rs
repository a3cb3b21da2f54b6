use isml_runtime::rpc::{Call, Sink, Status};

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "demo.v1")]
struct Ping {
    #[isml(tag = 1)]
    seq: u32,
}

#[isml_runtime::service(package = "demo.v1")]
trait Pinger {
    // The call is missing.
    #[rpc(id = 1)]
    async fn no_call(&self, req: Ping) -> Result<Ping, Status>;
    // Requests are taken by value.
    #[rpc(id = 2)]
    async fn by_ref(&self, call: Call, req: &Ping) -> Result<Ping, Status>;
    // Not an async fn.
    #[rpc(id = 3)]
    fn blocking(&self, call: Call, req: Ping) -> Result<Ping, Status>;
    // A stream of responses goes through the sink, not the result.
    #[rpc(id = 4)]
    async fn streams(&self, call: Call, req: Ping, out: Sink<Ping>) -> Result<Ping, Status>;
    // The error is a `Status`.
    #[rpc(id = 5)]
    async fn other_error(&self, call: Call, req: Ping) -> Result<Ping, String>;
    // `&mut self`.
    #[rpc(id = 6)]
    async fn exclusive(&mut self, call: Call, req: Ping);
}

fn main() {}
