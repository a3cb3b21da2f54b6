fn main() {
    isml_schema::Builder::new()
        .include("../schemas")
        .file("../schemas/charging.isml")
        .compile()
        .unwrap_or_else(|e| panic!("{e}"));
}
