//! Framing under arbitrary chunking: every frame split at every point, every
//! proper prefix reported as "need more" (`Ok(None)`), many frames fed byte by
//! byte, and the tokio-util codecs reading from a small in-memory duplex.
//!
//! For the 70000-byte payloads, splitting at every one of the 70000 points with
//! a fresh decoder would copy the frame 70000 times, so those frames are split
//! at every point of their first and last 64 bytes and every 509th point in
//! between; they are still fed byte by byte in full to one decoder.

use bytes::BytesMut;
use futures_util::StreamExt;
use isml_runtime::codec::{SerialCodec, StreamCodec};
use isml_runtime::wire::{
    Addressing, Frame, SerialDecoder, SerialFrame, StreamDecoder, put_serial_frame,
    put_stream_frame,
};
use isml_tests::corpus::{header_forms, payload};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Encoder, FramedRead};

const SIZES: [usize; 6] = [0, 1, 127, 128, 300, 70000];
const MAX: usize = 1 << 17;

fn stream_corpus() -> Vec<(Frame, Vec<u8>)> {
    let mut out = Vec::new();
    for h in header_forms() {
        for (i, size) in SIZES.into_iter().enumerate() {
            let frame = Frame::new(h, payload(size, i % 2 == 0));
            let mut enc = BytesMut::new();
            put_stream_frame(&mut enc, &frame.header, &frame.payload, MAX).unwrap();
            out.push((frame, enc.to_vec()));
        }
    }
    out
}

/// Serial frames of every header form and size, alternately point-to-point and
/// addressed, with and without zero bytes in the payload.
fn serial_corpus() -> Vec<(SerialFrame, Vec<u8>, Addressing)> {
    let mut out = Vec::new();
    for (j, h) in header_forms().into_iter().enumerate() {
        for (i, size) in SIZES.into_iter().enumerate() {
            let address = if (i + j) % 2 == 0 {
                None
            } else {
                Some(j as u8)
            };
            let frame = Frame::new(h, payload(size, (i + j) % 3 == 0));
            let mut enc = BytesMut::new();
            put_serial_frame(&mut enc, address, &frame.header, &frame.payload, MAX).unwrap();
            let addressing = if address.is_some() {
                Addressing::Any
            } else {
                Addressing::None
            };
            out.push((SerialFrame { address, frame }, enc.to_vec(), addressing));
        }
    }
    out
}

/// Split points 1 .. len-1 (all of them for frames up to 2000 bytes).
fn split_points(len: usize) -> Vec<usize> {
    if len <= 2000 {
        (1..len).collect()
    } else {
        let mut v: Vec<usize> = (1..64).chain(len - 64..len).collect();
        v.extend((64..len - 64).step_by(509));
        v
    }
}

#[test]
fn stream_frame_split_in_two_at_every_point() {
    for (frame, enc) in stream_corpus() {
        for k in split_points(enc.len()) {
            let mut dec = StreamDecoder::new(MAX);
            let mut buf = BytesMut::from(&enc[..k]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(None),
                "{:?} split at {k}",
                frame.header
            );
            buf.extend_from_slice(&enc[k..]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(Some(frame.clone())),
                "{:?} split at {k}",
                frame.header
            );
            assert!(buf.is_empty());
            assert_eq!(dec.decode(&mut buf), Ok(None));
        }
    }
}

#[test]
fn stream_frame_every_prefix_needs_more() {
    for (frame, enc) in stream_corpus() {
        // A fresh decoder for each proper prefix, asked twice.
        for k in std::iter::once(0).chain(split_points(enc.len())) {
            let mut dec = StreamDecoder::new(MAX);
            let mut buf = BytesMut::from(&enc[..k]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(None),
                "{:?} prefix {k}",
                frame.header
            );
            assert_eq!(
                dec.decode(&mut buf),
                Ok(None),
                "{:?} prefix {k}",
                frame.header
            );
        }
        // One decoder fed every byte in turn: nothing until the last one.
        let mut dec = StreamDecoder::new(MAX);
        let mut buf = BytesMut::new();
        for (i, &b) in enc.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let got = dec.decode(&mut buf).unwrap();
            if i + 1 < enc.len() {
                assert_eq!(got, None, "{:?} after byte {i}", frame.header);
            } else {
                assert_eq!(got.as_ref(), Some(&frame));
            }
        }
        assert!(buf.is_empty());
    }
}

#[test]
fn stream_frames_concatenated_fed_byte_by_byte() {
    let corpus: Vec<_> = stream_corpus()
        .into_iter()
        .filter(|(f, _)| f.payload.len() <= 300)
        .collect();
    let wire: Vec<u8> = corpus.iter().flat_map(|(_, e)| e.iter().copied()).collect();
    let mut dec = StreamDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        if let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    let expected: Vec<Frame> = corpus.into_iter().map(|(f, _)| f).collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    assert!(buf.is_empty());
    // The same stream in one piece.
    let mut buf = BytesMut::from(&wire[..]);
    let mut all = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        all.push(f);
    }
    assert_eq!(all, expected);
}

#[test]
fn serial_frame_split_in_two_at_every_point() {
    for (frame, enc, addressing) in serial_corpus() {
        for k in split_points(enc.len()) {
            let mut dec = SerialDecoder::new(MAX, addressing);
            let mut buf = BytesMut::from(&enc[..k]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(None),
                "{:?} split at {k}",
                frame.frame.header
            );
            buf.extend_from_slice(&enc[k..]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(Some(frame.clone())),
                "{:?} split at {k}",
                frame.frame.header
            );
            assert!(buf.is_empty());
            assert_eq!(dec.decode(&mut buf), Ok(None));
        }
    }
}

#[test]
fn serial_frame_every_prefix_needs_more() {
    for (frame, enc, addressing) in serial_corpus() {
        for k in std::iter::once(0).chain(split_points(enc.len())) {
            let mut dec = SerialDecoder::new(MAX, addressing);
            let mut buf = BytesMut::from(&enc[..k]);
            assert_eq!(dec.decode(&mut buf), Ok(None), "prefix {k}");
            assert_eq!(dec.decode(&mut buf), Ok(None), "prefix {k}");
        }
        let mut dec = SerialDecoder::new(MAX, addressing);
        let mut buf = BytesMut::new();
        for (i, &b) in enc.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let got = dec.decode(&mut buf).unwrap();
            if i + 1 < enc.len() {
                assert_eq!(got, None, "{:?} after byte {i}", frame.frame.header);
            } else {
                assert_eq!(got.as_ref(), Some(&frame));
            }
        }
        assert!(buf.is_empty());
    }
}

#[test]
fn serial_frames_concatenated_fed_byte_by_byte() {
    // One addressing for the whole line: every frame addressed.
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (i, h) in header_forms().into_iter().enumerate() {
        for (j, size) in [0usize, 1, 127, 128, 300].into_iter().enumerate() {
            let address = Some((i * 5 + j) as u8);
            let frame = Frame::new(h, payload(size, j % 2 == 0));
            let mut enc = BytesMut::new();
            put_serial_frame(&mut enc, address, &frame.header, &frame.payload, MAX).unwrap();
            wire.extend_from_slice(&enc);
            expected.push(SerialFrame { address, frame });
        }
    }
    let mut dec = SerialDecoder::new(MAX, Addressing::Any);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        if let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, expected);
    assert!(buf.is_empty());
}

/// Writes `wire` into a 64-byte duplex in chunks of `chunk` bytes, then closes it.
fn spawn_writer(
    wire: Vec<u8>,
    chunk: usize,
) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
    let (mut tx, rx) = tokio::io::duplex(64);
    let task = tokio::spawn(async move {
        for part in wire.chunks(chunk) {
            tx.write_all(part).await.unwrap();
        }
        tx.shutdown().await.unwrap();
    });
    (rx, task)
}

#[tokio::test]
async fn stream_codec_reads_chunked_duplex() {
    let corpus: Vec<_> = stream_corpus()
        .into_iter()
        .filter(|(f, _)| f.payload.len() <= 300 || f.header == header_forms()[5])
        .collect();
    let expected: Vec<Frame> = corpus.iter().map(|(f, _)| f.clone()).collect();
    // The codec's encoder writes the same bytes as `put_stream_frame`.
    let mut codec = StreamCodec::builder().max_frame_len(MAX).build();
    let mut wire = BytesMut::new();
    for f in &expected {
        codec.encode(f, &mut wire).unwrap();
    }
    let concatenated: Vec<u8> = corpus.iter().flat_map(|(_, e)| e.iter().copied()).collect();
    assert_eq!(&wire[..], &concatenated[..]);
    for chunk in [1, 3, 64, 1000] {
        let (rx, writer) = spawn_writer(concatenated.clone(), chunk);
        let mut reader = FramedRead::new(rx, StreamCodec::builder().max_frame_len(MAX).build());
        let mut got = Vec::new();
        while let Some(item) = reader.next().await {
            got.push(item.unwrap());
        }
        writer.await.unwrap();
        assert_eq!(got, expected, "chunks of {chunk}");
    }
}

#[tokio::test]
async fn serial_codec_reads_chunked_duplex() {
    let mut frames = Vec::new();
    for (i, h) in header_forms().into_iter().enumerate() {
        for size in [0usize, 1, 128, 300] {
            frames.push(Frame::new(h, payload(size, i % 2 == 0)));
        }
    }
    let mut codec = SerialCodec::builder()
        .max_frame_len(1024)
        .addressing(Addressing::Node(7), 7)
        .build();
    let mut wire = BytesMut::new();
    for f in &frames {
        codec.encode(f, &mut wire).unwrap();
    }
    for chunk in [1, 5, 64, 4096] {
        let (rx, writer) = spawn_writer(wire.to_vec(), chunk);
        let reader_codec = SerialCodec::builder()
            .max_frame_len(1024)
            .addressing(Addressing::Node(7), 1)
            .build();
        let mut reader = FramedRead::new(rx, reader_codec);
        let mut got = Vec::new();
        while let Some(item) = reader.next().await {
            got.push(item.unwrap().unwrap());
        }
        writer.await.unwrap();
        let expected: Vec<SerialFrame> = frames
            .iter()
            .map(|f| SerialFrame {
                address: Some(7),
                frame: f.clone(),
            })
            .collect();
        assert_eq!(got, expected, "chunks of {chunk}");
    }
}
