//! The stream framing (`isml_wire::StreamDecoder` and the runtime's
//! `StreamCodec`) and the serial framing (`SerialDecoder`, `SerialCodec`,
//! COBS and CRC-32C), with what frames carry at the link level: error
//! bodies, credit grants, batches of stream items and fragments.

use bytes::BytesMut;
use isml_runtime::codec::{FrameLimit, SerialCodec, StreamCodec};
use isml_wire::batch::BatchItems;
use isml_wire::{
    Addressing, Assembled, ControlOp, Credit, DecodeError, ErrorBody, Frame, FrameKind,
    Reassembler, SerialDecoder, SerialFrame, StreamDecoder, cobs_decode, put_serial_frame,
    put_stream_frame,
};
use tokio_util::codec::Decoder;

/// Receive limits the first input byte chooses from.
const LIMITS: [usize; 4] = [8, 64, 1024, 64 * 1024];

/// The first byte of an input picks the receive limit (low 2 bits) and the
/// size of the reads the bytes arrive in (the other 6 bits, 1..=64 bytes).
fn split_selector(data: &[u8]) -> Option<(usize, usize, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    Some((
        LIMITS[usize::from(sel & 3)],
        usize::from(sel >> 2) + 1,
        rest,
    ))
}

/// Stream framing: the bytes decode the same whether they arrive at once or
/// in small reads, through the wire decoder or the runtime's codec; every
/// frame re-encodes to exactly the bytes it was read from; the payloads of
/// link frames parse or fail cleanly and round-trip when they parse.
pub fn stream_frame(data: &[u8]) {
    let Some((max, read, data)) = split_selector(data) else {
        return;
    };

    // All at once, through the wire crate's decoder.
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(data);
    let mut decoder = StreamDecoder::new(max);
    let whole_end = loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                let start = data.len() - before;
                let end = data.len() - buf.len();
                whole.push((frame, start..end));
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    for (frame, range) in &whole {
        assert!(
            frame.len() <= max,
            "a frame of {} bytes passed a limit of {max}",
            frame.len()
        );
        let mut again = BytesMut::new();
        put_stream_frame(&mut again, &frame.header, &frame.payload, max)
            .expect("a decoded frame encodes again");
        assert_eq!(
            &again[..],
            &data[range.clone()],
            "re-encoding {:?}",
            frame.header
        );
        link_payload(frame);
    }
    reassemble(whole.iter().map(|(f, _)| f.clone()), max);

    // In reads of `read` bytes, through the runtime's codec, with a shared
    // receive limit (as servers use during the handshake).
    let limit = FrameLimit::new(max);
    let mut codec = StreamCodec::builder()
        .max_frame_len(max)
        .receive_limit(limit.clone())
        .build();
    let mut pieces = Vec::new();
    let mut buf = BytesMut::new();
    let mut failed = false;
    'outer: for chunk in data.chunks(read) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => pieces.push(frame),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
    }
    if !failed {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => pieces.push(frame),
            Ok(None) => assert!(
                buf.is_empty(),
                "decode_eof left {} bytes unreported",
                buf.len()
            ),
            Err(_) => failed = true,
        }
    }
    let whole_frames: Vec<&Frame> = whole.iter().map(|(f, _)| f).collect();
    let piece_frames: Vec<&Frame> = pieces.iter().collect();
    assert_eq!(
        whole_frames, piece_frames,
        "the same bytes in reads of {read}"
    );
    // The whole buffer ending inside a frame is an error only at the end of
    // the stream (decode_eof), so compare errors, not "need more".
    if whole_end.is_some() {
        assert!(
            failed,
            "the codec accepted what the decoder refused: {whole_end:?}"
        );
    }
}

/// The payload of a link-level frame parses or fails with an error, and
/// what parses encodes back to the same bytes.
fn link_payload(frame: &Frame) {
    let payload = &frame.payload[..];
    match frame.header.kind {
        FrameKind::Error | FrameKind::StreamEnd | FrameKind::Control(ControlOp::Close) => {
            if let Ok(body) = ErrorBody::decode(payload) {
                let mut again = Vec::new();
                body.encode(&mut again);
                assert_eq!(ErrorBody::decode(&again), Ok(body));
            }
        }
        FrameKind::Control(ControlOp::Credit) => {
            if let Ok(credit) = Credit::decode(payload) {
                let mut again = Vec::new();
                credit.encode(&mut again);
                assert_eq!(again.len(), credit.encoded_len());
                assert_eq!(Credit::decode(&again), Ok(credit));
            }
        }
        FrameKind::StreamItem if frame.header.batch => {
            let mut end = 0;
            for item in BatchItems::new(payload) {
                match item {
                    Ok(range) => {
                        assert!(range.start >= end && range.end <= payload.len());
                        end = range.end;
                    }
                    Err(_) => break,
                }
            }
        }
        _ => {}
    }
}

/// Fragments join into messages no larger than the reassembler's limit.
fn reassemble(frames: impl Iterator<Item = Frame>, max: usize) {
    let max_message = max * 4;
    let mut joiner = Reassembler::new(max_message);
    for frame in frames {
        match joiner.push(frame) {
            Ok(Assembled::Complete(f)) => {
                assert!(
                    f.payload.len() <= max_message,
                    "joined {} bytes",
                    f.payload.len()
                );
                assert!(!f.header.more);
            }
            Ok(Assembled::Pending) => assert!(joiner.buffered() <= max_message),
            Err(_) => joiner.clear(),
        }
    }
}

/// Serial framing: the bytes decode to the same frames at once and in
/// reads of any size; a corrupt frame is dropped and the next one decodes;
/// every frame re-encodes and decodes to itself.
pub fn serial_frame(data: &[u8]) {
    let Some((&addr_sel, data)) = data.split_first() else {
        return;
    };
    let Some((max, read, data)) = split_selector(data) else {
        return;
    };
    let addressing = match addr_sel % 3 {
        0 => Addressing::None,
        1 => Addressing::Any,
        _ => Addressing::Node(addr_sel),
    };
    // With the top bit set, the rest is `[len][body]...` and the harness
    // adds the CRC and the COBS framing itself, so that the search reaches
    // the header and payload checks behind a valid checksum.
    let framed;
    let data = if addr_sel & 0x80 != 0 {
        framed = frame_bodies(data);
        &framed[..]
    } else {
        data
    };

    let mut whole = Vec::new();
    let mut buf = BytesMut::from(data);
    let mut decoder = SerialDecoder::new(max, addressing);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => whole.push(frame),
            Ok(None) => break,
            Err(_) => assert!(
                buf.len() < before || before == 0,
                "an error consumed nothing"
            ),
        }
    }
    assert!(
        buf.len() <= serial_buffer_bound(max),
        "{} bytes kept",
        buf.len()
    );

    let mut codec = SerialCodec::builder()
        .max_frame_len(max)
        .addressing(addressing, 1)
        .build();
    let mut pieces = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in data.chunks(read) {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("serial decoding never fails hard")
        {
            if let Ok(frame) = item {
                pieces.push(frame);
            }
        }
        assert!(
            buf.len() <= serial_buffer_bound(max),
            "{} bytes buffered",
            buf.len()
        );
    }
    assert_eq!(whole, pieces, "the same bytes in reads of {read}");

    for SerialFrame { address, frame } in &whole {
        assert!(frame.len() <= max);
        if let Addressing::Node(me) = addressing {
            assert!(matches!(address, Some(a) if *a == me || *a == isml_wire::BROADCAST));
        }
        let mut again = BytesMut::new();
        put_serial_frame(&mut again, *address, &frame.header, &frame.payload, max)
            .expect("a decoded serial frame encodes again");
        let mut d = SerialDecoder::new(max, addressing);
        let back = d.decode(&mut again).expect("re-encoded frame decodes");
        assert_eq!(back.as_ref().map(|f| &f.frame), Some(frame));
        assert!(again.is_empty());
        link_payload(frame);
    }

    // COBS alone: decoding never yields more than it was given.
    let block = data.split(|&b| b == 0).next().unwrap_or_default();
    let mut out = Vec::new();
    match cobs_decode(block, &mut out) {
        Ok(()) => assert!(out.len() <= block.len()),
        Err(DecodeError::CorruptFrame { .. }) => {}
        Err(_) => {}
    }
}

/// What a serial decoder may keep buffered between reads: at most one
/// encoded frame and a read's worth of bytes.
fn serial_buffer_bound(max: usize) -> usize {
    isml_wire::cobs_max_len(max + 1 + 4) + 64
}

/// Serial frames around the `[len][body]` records of `data`: each body with
/// its CRC-32C, COBS-encoded, then the delimiter.
fn frame_bodies(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (body, tail) = tail.split_at(usize::from(len).min(tail.len()));
        let mut raw = body.to_vec();
        raw.extend_from_slice(&isml_wire::Crc32c::checksum(body).to_le_bytes());
        cobs_encode(&raw, &mut out);
        out.push(0);
        rest = tail;
    }
    out
}

/// COBS (written here from the algorithm, so that the decoder under test
/// is not also the reference).
fn cobs_encode(src: &[u8], out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in src {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xff {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
}
