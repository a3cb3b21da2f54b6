fn main() {
    isml_schema::Builder::new()
        .file("schemas/bench.isml")
        .compile()
        .unwrap_or_else(|e| panic!("{e}"));
}
