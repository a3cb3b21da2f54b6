//! Serial framing (wire format §4): optional node address, CRC-32C, COBS and a
//! `00` delimiter. No I/O here; the runtime's `SerialCodec` drives it.

use alloc::vec::Vec;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Crc32c, DecodeError, EncodeError, Frame, FrameHeader};

/// The broadcast node address on a multi-drop bus.
pub const BROADCAST: u8 = 0xff;

/// The default maximum serial frame (header and payload): 4 KiB.
pub const DEFAULT_MAX_SERIAL_FRAME: usize = 4 * 1024;

/// Longest possible header: lead, extension, type id, correlation and sequence varints.
const MAX_HEADER: usize = FrameHeader::MAX_ENCODED_LEN;

/// Node addressing on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// Point-to-point: no address byte.
    #[default]
    None,
    /// Multi-drop bus: every frame has an address byte; accept all of them (a bus master).
    Any,
    /// Multi-drop bus: accept only frames for this node or [`BROADCAST`].
    Node(u8),
}

impl Addressing {
    fn present(self) -> bool {
        !matches!(self, Addressing::None)
    }
}

/// A frame received on a serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialFrame {
    /// The node address byte, when the line uses addressing.
    pub address: Option<u8>,
    /// The frame.
    pub frame: Frame,
}

/// Maximum COBS output for `n` input bytes, including the delimiter.
pub const fn cobs_max_len(n: usize) -> usize {
    n + n / 254 + 2
}

/// COBS-encodes bytes pushed one at a time into a buffer, in place.
struct CobsWriter<'a> {
    dst: &'a mut BytesMut,
    code_at: usize,
    code: u8,
}

impl<'a> CobsWriter<'a> {
    fn new(dst: &'a mut BytesMut) -> Self {
        let code_at = dst.len();
        dst.put_u8(0);
        CobsWriter {
            dst,
            code_at,
            code: 1,
        }
    }

    fn close_block(&mut self) {
        self.dst[self.code_at] = self.code;
        self.code_at = self.dst.len();
        self.dst.put_u8(0);
        self.code = 1;
    }

    fn push(&mut self, b: u8) {
        if b == 0 {
            self.close_block();
        } else {
            self.dst.put_u8(b);
            self.code += 1;
            if self.code == 0xff {
                self.close_block();
            }
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    fn finish(self) {
        self.dst[self.code_at] = self.code;
        self.dst.put_u8(0);
    }
}

/// Decodes one COBS block sequence (without its delimiter).
pub fn cobs_decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let mut i = 0;
    while i < src.len() {
        let code = src[i] as usize;
        if code == 0 {
            return Err(DecodeError::CorruptFrame {
                reason: "zero byte inside a COBS block",
            });
        }
        let end = i + code;
        if end > src.len() {
            return Err(DecodeError::CorruptFrame {
                reason: "COBS block runs past the delimiter",
            });
        }
        let data = &src[i + 1..end];
        if data.contains(&0) {
            return Err(DecodeError::CorruptFrame {
                reason: "zero byte inside a COBS block",
            });
        }
        out.extend_from_slice(data);
        i = end;
        if code < 0xff && i < src.len() {
            out.push(0);
        }
    }
    Ok(())
}

/// Writes one serial frame: COBS(`[address]` header payload crc32c) then `00`.
pub fn put_serial_frame(
    dst: &mut BytesMut,
    address: Option<u8>,
    header: &FrameHeader,
    payload: &[u8],
    max_frame: usize,
) -> Result<(), EncodeError> {
    let len = header.encoded_len() + payload.len();
    if len > max_frame {
        return Err(EncodeError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    let mut head = [0u8; MAX_HEADER];
    let head_len = {
        let mut w = &mut head[..];
        header.encode(&mut w)?;
        MAX_HEADER - w.len()
    };
    let mut digest = Crc32c::new();
    let raw_len = address.map_or(0, |_| 1) + len + 4;
    dst.reserve(cobs_max_len(raw_len));
    let mut w = CobsWriter::new(dst);
    if let Some(a) = address {
        digest.update(&[a]);
        w.push(a);
    }
    digest.update(&head[..head_len]);
    w.extend(&head[..head_len]);
    digest.update(payload);
    w.extend(payload);
    w.extend(&digest.finalize().to_le_bytes());
    w.finish();
    Ok(())
}

/// Incremental decoder of serial frames.
///
/// Errors are *not* fatal: each error consumed the bad bytes up to the next
/// delimiter, so the next call decodes the next frame.
#[derive(Debug, Clone)]
pub struct SerialDecoder {
    max_frame: usize,
    addressing: Addressing,
    discarding: bool,
    scanned: usize,
}

impl SerialDecoder {
    /// A decoder for frames of up to `max_frame` bytes (header and payload).
    pub fn new(max_frame: usize, addressing: Addressing) -> Self {
        SerialDecoder {
            max_frame,
            addressing,
            discarding: false,
            scanned: 0,
        }
    }

    fn max_encoded(&self) -> usize {
        cobs_max_len(self.max_frame + 1 + 4)
    }

    /// Takes the next frame out of `src`: `Ok(None)` when more bytes are needed,
    /// `Err` for a corrupt or oversized frame (already dropped).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SerialFrame>, DecodeError> {
        loop {
            let Some(i) = src[self.scanned..].iter().position(|&b| b == 0) else {
                self.scanned = src.len();
                if self.discarding {
                    src.clear();
                    self.scanned = 0;
                } else if src.len() > self.max_encoded() {
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Err(DecodeError::FrameTooLarge {
                        len: self.max_encoded() as u64 + 1,
                        max: self.max_frame,
                    });
                }
                return Ok(None);
            };
            let end = self.scanned + i;
            self.scanned = 0;
            let block = src.split_to(end);
            src.advance(1);
            if core::mem::take(&mut self.discarding) || block.is_empty() {
                continue;
            }
            if block.len() > self.max_encoded() {
                return Err(DecodeError::FrameTooLarge {
                    len: block.len() as u64,
                    max: self.max_frame,
                });
            }
            match self.decode_block(&block)? {
                Some(frame) => return Ok(Some(frame)),
                None => continue,
            }
        }
    }

    fn decode_block(&self, block: &[u8]) -> Result<Option<SerialFrame>, DecodeError> {
        let mut raw = Vec::with_capacity(block.len());
        cobs_decode(block, &mut raw)?;
        let addr_len = usize::from(self.addressing.present());
        if raw.len() < addr_len + 1 + 4 {
            return Err(DecodeError::CorruptFrame {
                reason: "frame shorter than its address, lead byte and CRC",
            });
        }
        let (body, crc) = raw.split_at(raw.len() - 4);
        let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if Crc32c::checksum(body) != expected {
            return Err(DecodeError::CorruptFrame {
                reason: "CRC-32C mismatch",
            });
        }
        if body.len() - addr_len > self.max_frame {
            return Err(DecodeError::FrameTooLarge {
                len: (body.len() - addr_len) as u64,
                max: self.max_frame,
            });
        }
        let address = if addr_len == 1 { Some(body[0]) } else { None };
        if let (Addressing::Node(me), Some(a)) = (self.addressing, address)
            && a != me
            && a != BROADCAST
        {
            return Ok(None);
        }
        let mut bytes = Bytes::from(raw);
        bytes.truncate(bytes.len() - 4);
        let frame = Frame::decode(bytes.slice(addr_len..))?;
        Ok(Some(SerialFrame { address, frame }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{boxed::Box, format, string::String, vec, vec::Vec};

    fn cobs(input: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        let mut w = CobsWriter::new(&mut dst);
        w.extend(input);
        w.finish();
        dst.to_vec()
    }

    /// A request header at its widest (type id, correlation, sequence number
    /// and call header all at their largest varints) used to overrun the
    /// header scratch buffer and panic (found by the `serial_frame` fuzz target).
    #[test]
    fn the_widest_header_fits() {
        let mut header = FrameHeader::request(u32::MAX, u64::MAX);
        header.seq = Some(u64::MAX);
        header.more = true;
        header.call = Some(crate::header::CallHeader {
            service: u32::MAX,
            method: 65535,
            deadline_ms: u64::MAX,
        });
        assert!(header.encoded_len() <= FrameHeader::MAX_ENCODED_LEN);
        let mut dst = BytesMut::new();
        put_serial_frame(&mut dst, Some(7), &header, b"payload", 1 << 16).unwrap();
        let mut decoder = SerialDecoder::new(1 << 16, Addressing::Any);
        let frame = decoder.decode(&mut dst).unwrap().expect("one frame");
        assert_eq!(frame.address, Some(7));
        assert_eq!(frame.frame.header, header);
        assert_eq!(&frame.frame.payload[..], b"payload");
    }

    #[test]
    fn cobs_examples_from_the_spec() {
        assert_eq!(cobs(&[0x11, 0x22, 0x00, 0x33]), [3, 0x11, 0x22, 2, 0x33, 0]);
        assert_eq!(cobs(&[0x00]), [1, 1, 0]);
        assert_eq!(cobs(&[]), [1, 0]);
    }

    #[test]
    fn cobs_round_trips_long_runs() {
        for n in [253usize, 254, 255, 508, 509, 1000] {
            for zero_every in [0usize, 7, 254, 300] {
                let input: Vec<u8> = (0..n)
                    .map(|i| {
                        if zero_every != 0 && i % zero_every == 0 {
                            0
                        } else {
                            (i % 251 + 1) as u8
                        }
                    })
                    .collect();
                let enc = cobs(&input);
                assert!(enc.len() <= cobs_max_len(n));
                assert_eq!(enc.iter().position(|&b| b == 0), Some(enc.len() - 1));
                let mut out = Vec::new();
                cobs_decode(&enc[..enc.len() - 1], &mut out).unwrap();
                assert_eq!(out, input, "n={n} zero_every={zero_every}");
            }
        }
    }
}
