//! A tour of the isml wire format: encodes one slot-telemetry reading as a
//! stream frame and as a serial frame, decodes both back, and prints the bytes
//! next to what MQTT would spend on the same reading.
//!
//! Run with `cargo run -p isml-examples --bin wire-tour`.

use bytes::BytesMut;
use isml_runtime::wire::{
    Addressing, Class, FrameHeader, PresenceWriter, Reader, SerialDecoder, StreamDecoder,
    put_serial_frame, put_stream_frame, write,
};

/// The reading of §9 of `docs/wire-format.md`, encoded by hand with the wire
/// primitives (generated code does the same).
fn telemetry_body(
    slot: u8,
    voltage_mv: u32,
    current_ma: i32,
    temp_c: f32,
    charging: bool,
) -> Vec<u8> {
    let mut presence = PresenceWriter::<2>::new();
    presence.set(1, Class::Varint);
    presence.set(2, Class::Varint);
    presence.set(3, Class::Varint);
    presence.set(4, Class::Fixed32);
    presence.set(5, Class::Varint);
    let mut body = Vec::new();
    presence.encode(&mut body);
    write::uvarint(&mut body, slot.into());
    write::uvarint(&mut body, voltage_mv.into());
    write::svarint(&mut body, current_ma.into());
    write::f32(&mut body, temp_c);
    write::uvarint(&mut body, charging.into());
    body
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let body = telemetry_body(2, 48_120, -1_500, 23.5, true);
    let header = FrameHeader::one_way(3);

    let mut stream = BytesMut::new();
    put_stream_frame(&mut stream, &header, &body, 1024)?;
    let mut serial = BytesMut::new();
    put_serial_frame(&mut serial, None, &header, &body, 1024)?;

    println!(
        "slot telemetry: slot=2 voltage_mv=48120 current_ma=-1500 temperature_c=23.5 charging=true\n"
    );
    println!("message body   ({:>2} B): {}", body.len(), hex(&body));
    println!("stream frame   ({:>2} B): {}", stream.len(), hex(&stream));
    println!("serial frame   ({:>2} B): {}", serial.len(), hex(&serial));

    let frame = StreamDecoder::new(1024)
        .decode(&mut stream.clone())?
        .ok_or("incomplete stream frame")?;
    let mut r = Reader::new(&frame.payload);
    let present: Vec<_> = r.presence()?.collect();
    let slot = r.u8_varint()?;
    let voltage = r.u32()?;
    let current = r.i32()?;
    let temp = r.f32()?;
    let charging = r.bool_varint()?;
    r.finish("SlotTelemetry")?;
    println!(
        "\ndecoded: type {} fields {:?}\n         slot={slot} voltage_mv={voltage} current_ma={current} temperature_c={temp} charging={charging}",
        frame.header.type_id,
        present.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    let from_serial = SerialDecoder::new(1024, Addressing::None)
        .decode(&mut serial.clone())?
        .ok_or("incomplete serial frame")?;
    assert_eq!(from_serial.frame, frame);

    let json =
        r#"{"slot":2,"voltage_mv":48120,"current_ma":-1500,"temperature_c":23.5,"charging":true}"#;
    let mqtt_framing = 2 + 2 + "cab/17/tel".len();
    println!("\nbytes on the wire for this reading:");
    println!("  {:<34} {:>4}", "isml, TCP stream", stream.len());
    println!(
        "  {:<34} {:>4}",
        "isml, serial (COBS + CRC-32C)",
        serial.len()
    );
    println!(
        "  {:<34} {:>4}",
        "MQTT 3.1.1, same binary payload",
        mqtt_framing + body.len()
    );
    println!(
        "  {:<34} {:>4}",
        "MQTT 3.1.1, JSON payload",
        mqtt_framing + json.len()
    );
    Ok(())
}
