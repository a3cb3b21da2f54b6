fn main() {
    // Two compilations: compiled together, each package's dispatch table
    // would name the other's types by a module path that assumes the
    // packages nest (`bench` around `bench::rpc::v1`), which they do not here.
    for schema in ["schemas/bench.isml", "schemas/rpcbench.isml"] {
        isml_schema::Builder::new()
            .file(schema)
            .compile()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // The tonic peer of `rpc-compare`: protox parses the .proto (no protoc on
    // the machine or in CI), tonic-prost-build generates messages, client and
    // server from the descriptors.
    println!("cargo:rerun-if-changed=schemas/rpcbench.proto");
    let fds = protox::compile(["rpcbench.proto"], ["schemas"])
        .unwrap_or_else(|e| panic!("schemas/rpcbench.proto: {e}"));
    // A folder of its own: tonic names its file after the package, as
    // isml-schema does, and both packages are `bench.rpc.v1`.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("tonic");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    tonic_prost_build::configure()
        .out_dir(&out)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("tonic-prost-build: {e}"));
}
