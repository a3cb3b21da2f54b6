//! What nodes send each other over NATS, in the wire format's building
//! blocks (`uvarint`s and length-prefixed strings, `docs/cluster.md`). Every
//! record starts with a version byte, so that a later layout can be told
//! apart; a record that does not parse is dropped and counted, never trusted.

use bytes::{BufMut, Bytes, BytesMut};

use super::Retained;
use crate::wire::{Reader, varint};

const VERSION: u8 = 1;

fn put_str(b: &mut BytesMut, s: &str) {
    varint::put(b, s.len() as u64);
    b.put_slice(s.as_bytes());
}

fn reader(bytes: &[u8]) -> Option<Reader<'_>> {
    let mut r = Reader::new(bytes);
    (r.u8().ok()? == VERSION).then_some(r)
}

/// A publication as it crosses nodes (a subject's payload), and a retained
/// value as the bucket keeps it: the channel id (checked against the
/// receiver's channel of that name), the node it was accepted on, the
/// publisher, the broker's timestamp, and the encoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) channel: u32,
    pub(crate) origin: String,
    pub(crate) value: Retained,
}

impl Envelope {
    pub(crate) fn encode(
        channel: u32,
        origin: &str,
        publisher: &str,
        ts: u64,
        payload: &[u8],
    ) -> Bytes {
        let mut b = BytesMut::with_capacity(24 + origin.len() + publisher.len() + payload.len());
        b.put_u8(VERSION);
        varint::put(&mut b, u64::from(channel));
        put_str(&mut b, origin);
        put_str(&mut b, publisher);
        varint::put(&mut b, ts);
        b.put_slice(payload);
        b.freeze()
    }

    pub(crate) fn decode(bytes: &Bytes) -> Option<Envelope> {
        let mut r = reader(bytes)?;
        let channel = u32::try_from(r.uvarint().ok()?).ok()?;
        let origin = r.str().ok()?.to_owned();
        let publisher = r.str().ok()?.to_owned();
        let timestamp_ms = r.uvarint().ok()?;
        let at = bytes.len() - r.remaining();
        Some(Envelope {
            channel,
            origin,
            value: Retained::new(publisher, timestamp_ms, bytes.slice(at..)),
        })
    }
}

/// Where a device is connected: the presence bucket's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presence {
    pub(crate) node: String,
    /// The node's incarnation: a node restarted under the same id has
    /// another, so the entries of its previous life are told apart.
    pub(crate) incarnation: u64,
    pub(crate) session: u64,
    pub(crate) since_ms: u64,
}

impl Presence {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + self.node.len());
        b.put_u8(VERSION);
        put_str(&mut b, &self.node);
        varint::put(&mut b, self.incarnation);
        varint::put(&mut b, self.session);
        varint::put(&mut b, self.since_ms);
        b.freeze()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Presence> {
        let mut r = reader(bytes)?;
        Some(Presence {
            node: r.str().ok()?.to_owned(),
            incarnation: r.uvarint().ok()?,
            session: r.uvarint().ok()?,
            since_ms: r.uvarint().ok()?,
        })
    }
}

/// A node's lease: its incarnation, renewed while it lives.
pub(crate) fn lease(incarnation: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(11);
    b.put_u8(VERSION);
    varint::put(&mut b, incarnation);
    b.freeze()
}

pub(crate) fn parse_lease(bytes: &[u8]) -> Option<u64> {
    reader(bytes)?.uvarint().ok()
}

/// A device-to-device message for a device on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Send {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) type_id: u32,
    pub(crate) payload: Bytes,
}

impl Send {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b =
            BytesMut::with_capacity(16 + self.from.len() + self.to.len() + self.payload.len());
        b.put_u8(VERSION);
        put_str(&mut b, &self.from);
        put_str(&mut b, &self.to);
        varint::put(&mut b, u64::from(self.type_id));
        b.put_slice(&self.payload);
        b.freeze()
    }

    pub(crate) fn decode(bytes: &Bytes) -> Option<Send> {
        let mut r = reader(bytes)?;
        let from = r.str().ok()?.to_owned();
        let to = r.str().ok()?.to_owned();
        let type_id = u32::try_from(r.uvarint().ok()?).ok()?;
        let at = bytes.len() - r.remaining();
        Some(Send {
            from,
            to,
            type_id,
            payload: bytes.slice(at..),
        })
    }
}

/// A call of a device on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// Unique among the calls of the caller's node (with `caller`, what a
    /// cancel names).
    pub(crate) id: u64,
    pub(crate) caller: String,
    pub(crate) device: String,
    pub(crate) service: String,
    pub(crate) method_id: u32,
    pub(crate) fingerprint: u64,
    pub(crate) type_id: u32,
    /// Milliseconds the caller still waits (0: no deadline).
    pub(crate) deadline_ms: u64,
    pub(crate) wants_reply: bool,
    pub(crate) payload: Bytes,
}

impl Call {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(
            64 + self.device.len() + self.service.len() + self.payload.len(),
        );
        b.put_u8(VERSION);
        varint::put(&mut b, self.id);
        put_str(&mut b, &self.caller);
        put_str(&mut b, &self.device);
        put_str(&mut b, &self.service);
        varint::put(&mut b, u64::from(self.method_id));
        b.put_u64_le(self.fingerprint);
        varint::put(&mut b, u64::from(self.type_id));
        varint::put(&mut b, self.deadline_ms);
        b.put_u8(u8::from(self.wants_reply));
        b.put_slice(&self.payload);
        b.freeze()
    }

    pub(crate) fn decode(bytes: &Bytes) -> Option<Call> {
        let mut r = reader(bytes)?;
        let id = r.uvarint().ok()?;
        let caller = r.str().ok()?.to_owned();
        let device = r.str().ok()?.to_owned();
        let service = r.str().ok()?.to_owned();
        let method_id = u32::try_from(r.uvarint().ok()?).ok()?;
        let fingerprint = u64::from_le_bytes(r.raw(8).ok()?.try_into().ok()?);
        let type_id = u32::try_from(r.uvarint().ok()?).ok()?;
        let deadline_ms = r.uvarint().ok()?;
        let wants_reply = match r.u8().ok()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let at = bytes.len() - r.remaining();
        Some(Call {
            id,
            caller,
            device,
            service,
            method_id,
            fingerprint,
            type_id,
            deadline_ms,
            wants_reply,
            payload: bytes.slice(at..),
        })
    }
}

/// A cancel of call `id` of node `caller`.
pub(crate) fn cancel(id: u64, caller: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + caller.len());
    b.put_u8(VERSION);
    varint::put(&mut b, id);
    put_str(&mut b, caller);
    b.freeze()
}

pub(crate) fn parse_cancel(bytes: &[u8]) -> Option<(u64, String)> {
    let mut r = reader(bytes)?;
    Some((r.uvarint().ok()?, r.str().ok()?.to_owned()))
}

/// Why a hop failed at the device's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// The device is not connected there.
    NotHere = 1,
    /// The device does not serve the method.
    Unimplemented = 2,
    /// The device defines the method differently.
    Incompatible = 3,
    /// The deadline passed there.
    Timeout = 4,
    /// The device's session ended, or its queue refused the frame.
    Closed = 5,
}

/// What the device's node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Done (a message queued, a one-way call queued).
    Done,
    /// The device's answer frame: `error` for an error response.
    Frame {
        error: bool,
        type_id: u32,
        payload: Bytes,
    },
    /// The hop failed.
    Failed(Hop, String),
}

impl Answer {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        match self {
            Answer::Done => b.put_u8(0),
            Answer::Frame {
                error,
                type_id,
                payload,
            } => {
                b.put_u8(if *error { 2 } else { 1 });
                varint::put(&mut b, u64::from(*type_id));
                b.put_slice(payload);
            }
            Answer::Failed(hop, message) => {
                b.put_u8(3);
                b.put_u8(*hop as u8);
                put_str(&mut b, message);
            }
        }
        b.freeze()
    }

    pub(crate) fn decode(bytes: &Bytes) -> Option<Answer> {
        let mut r = reader(bytes)?;
        Some(match r.u8().ok()? {
            0 => Answer::Done,
            t @ (1 | 2) => {
                let type_id = u32::try_from(r.uvarint().ok()?).ok()?;
                let at = bytes.len() - r.remaining();
                Answer::Frame {
                    error: t == 2,
                    type_id,
                    payload: bytes.slice(at..),
                }
            }
            3 => {
                let hop = match r.u8().ok()? {
                    1 => Hop::NotHere,
                    2 => Hop::Unimplemented,
                    3 => Hop::Incompatible,
                    4 => Hop::Timeout,
                    5 => Hop::Closed,
                    _ => return None,
                };
                Answer::Failed(hop, r.str().ok()?.to_owned())
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let e = Envelope::encode(7, "a", "cab-1", 1_700_000_000_000, b"\x01\x02");
        let back = Envelope::decode(&e).unwrap();
        assert_eq!(back.channel, 7);
        assert_eq!(back.origin, "a");
        assert_eq!(back.value.publisher, "cab-1");
        assert_eq!(&back.value.payload[..], b"\x01\x02");

        let p = Presence {
            node: "b".into(),
            incarnation: u64::MAX,
            session: 3,
            since_ms: 4,
        };
        assert_eq!(Presence::decode(&p.encode()), Some(p));
        assert_eq!(parse_lease(&lease(99)), Some(99));

        let s = Send {
            from: "x".into(),
            to: "y".into(),
            type_id: 0x20,
            payload: Bytes::from_static(b"hi"),
        };
        assert_eq!(Send::decode(&s.encode()), Some(s));

        let c = Call {
            id: 5,
            caller: "a".into(),
            device: "cab-2".into(),
            service: "charging.v1.Charger".into(),
            method_id: 1,
            fingerprint: 0xdead_beef_0123_4567,
            type_id: 0x10,
            deadline_ms: 1500,
            wants_reply: true,
            payload: Bytes::from_static(b"\x08\x01"),
        };
        assert_eq!(Call::decode(&c.encode()), Some(c));
        assert_eq!(parse_cancel(&cancel(5, "a")), Some((5, "a".into())));

        for a in [
            Answer::Done,
            Answer::Frame {
                error: true,
                type_id: 0,
                payload: Bytes::from_static(b"e"),
            },
            Answer::Failed(Hop::NotHere, "gone".into()),
        ] {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            &b""[..],
            b"\x02",
            b"\x01",
            b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            let b = Bytes::copy_from_slice(bytes);
            assert!(Envelope::decode(&b).is_none());
            assert!(Presence::decode(&b).is_none());
            assert!(Call::decode(&b).is_none());
            assert!(Send::decode(&b).is_none());
        }
        assert!(Answer::decode(&Bytes::from_static(b"\x01\x09")).is_none());
        assert!(Answer::decode(&Bytes::from_static(b"\x01\x03\x07\x00")).is_none());
    }
}
