use isml_runtime::rpc::{Call, Streaming};

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "demo.v1")]
struct Chunk {
    #[isml(tag = 1)]
    data: Vec<u8>,
}

#[isml_runtime::service(package = "demo.v1")]
trait Uploader {
    #[rpc(id = 1)]
    async fn upload(&self, call: Call, req: Streaming<Chunk>);
}

fn main() {}
