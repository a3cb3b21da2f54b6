//! The publish/subscribe frames (wire format §2.8): link frames with
//! opcodes 8 (`subscribe`), 9 (`publish`), 10 (`deliver`) and 11
//! (`pubsub-reply`). Every field is a `uvarint` or a string (`uvarint`
//! length + UTF-8); the message of a publication is the rest of the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Reason, Refusal};
use crate::wire::{ControlOp, DecodeError, Frame, FrameHeader, Reader, varint};

/// `subscribe` operations.
pub(crate) const SUB_SUBSCRIBE: u64 = 0;
pub(crate) const SUB_UNSUBSCRIBE: u64 = 1;
pub(crate) const SUB_UNSUBSCRIBE_ALL: u64 = 2;
pub(crate) const SUB_DELETE: u64 = 3;

/// `publish` and `deliver` operations.
pub(crate) const OP_PUBLICATION: u64 = 0;
pub(crate) const OP_MESSAGE: u64 = 1;

/// `pubsub-reply` statuses.
pub(crate) const STATUS_ACCEPTED: u64 = 0;
pub(crate) const STATUS_PERSISTED: u64 = 1;
pub(crate) const STATUS_REFUSED: u64 = 2;

const FLAG_KEY: u64 = 1;

/// A pub/sub frame that does not follow §2.8.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum BadFrame {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("at byte {at}: {reason}")]
    Field { at: usize, reason: &'static str },
}

impl BadFrame {
    fn new(at: usize, reason: &'static str) -> Self {
        BadFrame::Field { at, reason }
    }
}
const FLAG_RETAINED: u64 = 2;

fn put_str(buf: &mut BytesMut, s: &str) {
    varint::put(buf, s.len() as u64);
    buf.put_slice(s.as_bytes());
}

fn str_len(s: &str) -> usize {
    varint::len(s.len() as u64) + s.len()
}

fn key_len(key: Option<&str>) -> usize {
    1 + key.map_or(0, str_len)
}

fn put_key(buf: &mut BytesMut, key: Option<&str>) {
    match key {
        Some(k) => {
            varint::put(buf, FLAG_KEY);
            put_str(buf, k);
        }
        None => varint::put(buf, 0),
    }
}

fn read_key(r: &mut Reader<'_>) -> Result<Option<String>, BadFrame> {
    let at = r.position();
    match r.uvarint()? {
        0 => Ok(None),
        FLAG_KEY => Ok(Some(r.str()?.to_owned())),
        _ => Err(BadFrame::new(at, "key presence must be 0 or 1")),
    }
}

fn read_u32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, BadFrame> {
    let at = r.position();
    u32::try_from(r.uvarint()?).map_err(|_| BadFrame::new(at, what))
}

/// A `subscribe` frame (opcode 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscribeFrame {
    /// 0 when no reply is wanted.
    pub(crate) correlation: u64,
    pub(crate) op: SubOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubOp {
    Subscribe { channel: u32, key: Option<String> },
    Unsubscribe { channel: u32, key: Option<String> },
    UnsubscribeAll,
    Delete { channel: u32, key: Option<String> },
}

impl SubscribeFrame {
    pub(crate) fn encode(&self) -> Frame {
        let mut buf = BytesMut::with_capacity(24);
        varint::put(&mut buf, self.correlation);
        let (op, target) = match &self.op {
            SubOp::Subscribe { channel, key } => (SUB_SUBSCRIBE, Some((channel, key))),
            SubOp::Unsubscribe { channel, key } => (SUB_UNSUBSCRIBE, Some((channel, key))),
            SubOp::UnsubscribeAll => (SUB_UNSUBSCRIBE_ALL, None),
            SubOp::Delete { channel, key } => (SUB_DELETE, Some((channel, key))),
        };
        varint::put(&mut buf, op);
        if let Some((channel, key)) = target {
            varint::put(&mut buf, u64::from(*channel));
            put_key(&mut buf, key.as_deref());
        }
        Frame::new(FrameHeader::control(ControlOp::Subscribe), buf.freeze())
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Self, BadFrame> {
        let mut r = Reader::new(payload);
        let correlation = r.uvarint()?;
        let at = r.position();
        let op = match r.uvarint()? {
            SUB_UNSUBSCRIBE_ALL => SubOp::UnsubscribeAll,
            op @ (SUB_SUBSCRIBE | SUB_UNSUBSCRIBE | SUB_DELETE) => {
                let channel = read_u32(&mut r, "channel id above 2^32-1")?;
                let key = read_key(&mut r)?;
                match op {
                    SUB_SUBSCRIBE => SubOp::Subscribe { channel, key },
                    SUB_UNSUBSCRIBE => SubOp::Unsubscribe { channel, key },
                    _ => SubOp::Delete { channel, key },
                }
            }
            _ => {
                return Err(BadFrame::new(at, "unknown subscribe operation"));
            }
        };
        r.finish("subscribe frame")?;
        Ok(SubscribeFrame { correlation, op })
    }
}

/// The head of a `publish` frame (opcode 9); the message is the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublishHead<'a> {
    Publication {
        correlation: u64,
        channel: u32,
        key: Option<&'a str>,
    },
    Message {
        correlation: u64,
        to: &'a str,
        type_id: u32,
    },
}

impl PublishHead<'_> {
    fn encoded_len(&self) -> usize {
        match self {
            PublishHead::Publication {
                correlation,
                channel,
                key,
            } => varint::len(*correlation) + 1 + varint::len(u64::from(*channel)) + key_len(*key),
            PublishHead::Message {
                correlation,
                to,
                type_id,
            } => varint::len(*correlation) + 1 + str_len(to) + varint::len(u64::from(*type_id)),
        }
    }

    /// Writes the head into `buf`, which must be empty, with room for `len`
    /// bytes of message after it; `finish(buf.split())` makes the frame.
    pub(crate) fn begin_in(&self, buf: &mut BytesMut, len: usize) {
        buf.reserve(self.encoded_len() + len);
        let buf = &mut *buf;
        match self {
            PublishHead::Publication {
                correlation,
                channel,
                key,
            } => {
                varint::put(buf, *correlation);
                varint::put(buf, OP_PUBLICATION);
                varint::put(buf, u64::from(*channel));
                put_key(buf, *key);
            }
            PublishHead::Message {
                correlation,
                to,
                type_id,
            } => {
                varint::put(buf, *correlation);
                varint::put(buf, OP_MESSAGE);
                put_str(buf, to);
                varint::put(buf, u64::from(*type_id));
            }
        }
    }

    /// The head's length on the wire.
    pub(crate) fn len(&self) -> usize {
        self.encoded_len()
    }

    /// The head and the offset of the message in `payload`.
    pub(crate) fn decode(payload: &[u8]) -> Result<(PublishHead<'_>, usize), BadFrame> {
        let mut r = Reader::new(payload);
        let correlation = r.uvarint()?;
        let at = r.position();
        let head = match r.uvarint()? {
            OP_PUBLICATION => {
                let channel = read_u32(&mut r, "channel id above 2^32-1")?;
                let at = r.position();
                let key = match r.uvarint()? {
                    0 => None,
                    FLAG_KEY => Some(r.str()?),
                    _ => {
                        return Err(BadFrame::new(at, "key presence must be 0 or 1"));
                    }
                };
                PublishHead::Publication {
                    correlation,
                    channel,
                    key,
                }
            }
            OP_MESSAGE => {
                let to = r.str()?;
                let type_id = read_u32(&mut r, "type id above 2^32-1")?;
                PublishHead::Message {
                    correlation,
                    to,
                    type_id,
                }
            }
            _ => {
                return Err(BadFrame::new(at, "unknown publish operation"));
            }
        };
        Ok((head, r.position()))
    }
}

/// The `publish` frame of a payload begun by [`PublishHead::begin_in`].
pub(crate) fn finish(payload: impl Into<Bytes>) -> Frame {
    Frame::new(FrameHeader::control(ControlOp::Publish), payload)
}

/// A publication as delivered (opcode 10, operation 0), without its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliverHead<'a> {
    /// The subscribe correlation for retained values sent on subscribing; 0 for live ones.
    pub(crate) replay: u64,
    pub(crate) channel: u32,
    pub(crate) key: Option<&'a str>,
    pub(crate) retained: bool,
    pub(crate) publisher: &'a str,
    pub(crate) timestamp_ms: u64,
}

impl DeliverHead<'_> {
    /// The whole `deliver` frame with `message` after the head: one copy,
    /// shared by every subscriber.
    pub(crate) fn frame(&self, message: &[u8]) -> Frame {
        let len = 1
            + varint::len(self.replay)
            + varint::len(u64::from(self.channel))
            + 1
            + self.key.map_or(0, str_len)
            + str_len(self.publisher)
            + varint::len(self.timestamp_ms)
            + message.len();
        let mut buf = BytesMut::with_capacity(len);
        varint::put(&mut buf, OP_PUBLICATION);
        varint::put(&mut buf, self.replay);
        varint::put(&mut buf, u64::from(self.channel));
        let flags = if self.key.is_some() { FLAG_KEY } else { 0 }
            | if self.retained { FLAG_RETAINED } else { 0 };
        varint::put(&mut buf, flags);
        if let Some(k) = self.key {
            put_str(&mut buf, k);
        }
        put_str(&mut buf, self.publisher);
        varint::put(&mut buf, self.timestamp_ms);
        buf.put_slice(message);
        Frame::new(FrameHeader::control(ControlOp::Deliver), buf.freeze())
    }
}

/// A received `deliver` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivered<'a> {
    Publication(DeliverHead<'a>, usize),
    Message {
        from: &'a str,
        type_id: u32,
        at: usize,
    },
}

impl Delivered<'_> {
    pub(crate) fn decode(payload: &[u8]) -> Result<Delivered<'_>, BadFrame> {
        let mut r = Reader::new(payload);
        let at = r.position();
        match r.uvarint()? {
            OP_PUBLICATION => {
                let replay = r.uvarint()?;
                let channel = read_u32(&mut r, "channel id above 2^32-1")?;
                let at = r.position();
                let flags = r.uvarint()?;
                if flags & !(FLAG_KEY | FLAG_RETAINED) != 0 {
                    return Err(BadFrame::new(at, "unknown deliver flags"));
                }
                let key = if flags & FLAG_KEY != 0 {
                    Some(r.str()?)
                } else {
                    None
                };
                let publisher = r.str()?;
                let timestamp_ms = r.uvarint()?;
                let head = DeliverHead {
                    replay,
                    channel,
                    key,
                    retained: flags & FLAG_RETAINED != 0,
                    publisher,
                    timestamp_ms,
                };
                Ok(Delivered::Publication(head, r.position()))
            }
            OP_MESSAGE => {
                let from = r.str()?;
                let type_id = read_u32(&mut r, "type id above 2^32-1")?;
                Ok(Delivered::Message {
                    from,
                    type_id,
                    at: r.position(),
                })
            }
            _ => Err(BadFrame::new(at, "unknown deliver operation")),
        }
    }
}

/// A device-to-device message as delivered (opcode 10, operation 1).
pub(crate) fn message_frame(from: &str, type_id: u32, message: &[u8]) -> Frame {
    let mut buf = BytesMut::with_capacity(
        1 + str_len(from) + varint::len(u64::from(type_id)) + message.len(),
    );
    varint::put(&mut buf, OP_MESSAGE);
    put_str(&mut buf, from);
    varint::put(&mut buf, u64::from(type_id));
    buf.put_slice(message);
    Frame::new(FrameHeader::control(ControlOp::Deliver), buf.freeze())
}

/// A `pubsub-reply` frame (opcode 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) correlation: u64,
    pub(crate) outcome: Result<bool, Refusal>,
}

impl Reply {
    #[cfg(test)]
    pub(crate) fn accepted(correlation: u64, persisted: bool) -> Reply {
        Reply {
            correlation,
            outcome: Ok(persisted),
        }
    }

    pub(crate) fn refused(correlation: u64, refusal: Refusal) -> Reply {
        Reply {
            correlation,
            outcome: Err(refusal),
        }
    }

    pub(crate) fn encode(&self) -> Frame {
        let mut buf = BytesMut::with_capacity(8);
        varint::put(&mut buf, self.correlation);
        match &self.outcome {
            Ok(false) => varint::put(&mut buf, STATUS_ACCEPTED),
            Ok(true) => varint::put(&mut buf, STATUS_PERSISTED),
            Err(r) => {
                varint::put(&mut buf, STATUS_REFUSED);
                varint::put(&mut buf, r.reason.code());
                put_str(&mut buf, &r.message);
            }
        }
        Frame::new(FrameHeader::control(ControlOp::PubSubReply), buf.freeze())
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Reply, BadFrame> {
        let mut r = Reader::new(payload);
        let correlation = r.uvarint()?;
        let at = r.position();
        let outcome = match r.uvarint()? {
            STATUS_ACCEPTED => Ok(false),
            STATUS_PERSISTED => Ok(true),
            STATUS_REFUSED => {
                let reason = Reason::from_code(r.uvarint()?);
                let message = r.str()?.to_owned();
                Err(Refusal { reason, message })
            }
            _ => {
                return Err(BadFrame::new(at, "unknown reply status"));
            }
        };
        r.finish("pubsub-reply frame")?;
        Ok(Reply {
            correlation,
            outcome,
        })
    }
}

/// The message part of a received frame, sharing its buffer.
pub(crate) fn rest(payload: &Bytes, at: usize) -> Bytes {
    payload.slice(at.min(payload.len())..)
}

/// [`rest`] of a payload no longer needed: moved past the head in place,
/// without a second reference to its buffer to take and drop.
pub(crate) fn into_rest(mut payload: Bytes, at: usize) -> Bytes {
    payload.advance(at.min(payload.len()));
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for op in [
            SubOp::Subscribe {
                channel: 1,
                key: None,
            },
            SubOp::Unsubscribe {
                channel: 300,
                key: Some("door".into()),
            },
            SubOp::UnsubscribeAll,
            SubOp::Delete {
                channel: 7,
                key: Some(String::new()),
            },
        ] {
            let f = SubscribeFrame { correlation: 9, op };
            assert_eq!(SubscribeFrame::decode(&f.encode().payload).unwrap(), f);
        }
        let head = PublishHead::Publication {
            correlation: 3,
            channel: 2,
            key: Some("k"),
        };
        let mut buf = BytesMut::new();
        head.begin_in(&mut buf, 2);
        buf.put_slice(&[0xaa, 0xbb]);
        let frame = finish(buf);
        assert_eq!(frame.payload[..], [3, 0, 2, 1, 1, b'k', 0xaa, 0xbb]);
        let (back, at) = PublishHead::decode(&frame.payload).unwrap();
        assert_eq!(back, head);
        assert_eq!(&frame.payload[at..], &[0xaa, 0xbb]);
        let d = DeliverHead {
            replay: 0,
            channel: 1,
            key: None,
            retained: true,
            publisher: "cab-1",
            timestamp_ms: 1_700_000_000_000,
        };
        let frame = d.frame(&[1, 2]);
        match Delivered::decode(&frame.payload).unwrap() {
            Delivered::Publication(h, at) => {
                assert_eq!(h, d);
                assert_eq!(&frame.payload[at..], &[1, 2]);
            }
            other => panic!("{other:?}"),
        }
        let r = Reply::refused(5, Refusal::new(Reason::RateLimited, "slow down"));
        assert_eq!(Reply::decode(&r.encode().payload).unwrap(), r);
        assert_eq!(
            Reply::decode(&Reply::accepted(6, true).encode().payload).unwrap(),
            Reply::accepted(6, true)
        );
    }

    /// The example of wire format §2.8.
    #[test]
    fn the_documented_example() {
        let head = PublishHead::Publication {
            correlation: 5,
            channel: 3,
            key: Some("k"),
        };
        let mut buf = BytesMut::new();
        head.begin_in(&mut buf, 2);
        buf.put_slice(&[1, 2]);
        let frame = finish(buf);
        let mut out = BytesMut::new();
        crate::wire::put_stream_frame(&mut out, &frame.header, &frame.payload, 1024).unwrap();
        assert_eq!(
            out[..],
            [0x08, 0x79, 0x05, 0x00, 0x03, 0x01, 0x01, 0x6b, 0x01, 0x02]
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(SubscribeFrame::decode(&[1, 9]).is_err());
        assert!(SubscribeFrame::decode(&[1, 0, 1, 2]).is_err());
        assert!(SubscribeFrame::decode(&[1, 2, 0]).is_err());
        assert!(Reply::decode(&[1, 7]).is_err());
        assert!(Delivered::decode(&[0, 0, 1, 4]).is_err());
        assert!(PublishHead::decode(&[0, 0, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
    }
}
