//! Frame headers (wire format §2).

use core::num::NonZeroU64;

use bytes::BufMut;

use super::{DecodeError, EncodeError, varint};

const X_BIT: u8 = 0x80;
const FLAG_SEQ: u8 = 0x01;
const FLAG_MORE: u8 = 0x02;
const FLAG_CALL: u8 = 0x04;
const FLAG_BATCH: u8 = 0x08;
const FLAGS_KNOWN: u8 = FLAG_SEQ | FLAG_MORE;

/// The call header of a request frame that calls a service method (wire
/// format §2.7): which method, and how long the caller waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallHeader {
    /// The service: its position in the services the callee announced in the
    /// handshake, counted from 1; 0 is the built-in reflection service.
    pub service: u32,
    /// The method id, 1 ..= 65535.
    pub method: u32,
    /// Milliseconds the caller still waits, counted when the frame is sent;
    /// 0 when it waits without a deadline.
    pub deadline_ms: u64,
}

impl CallHeader {
    /// Bytes the call header takes after the correlation id.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        varint::len(u64::from(self.service))
            + varint::len(u64::from(self.method))
            + varint::len(self.deadline_ms)
    }
}

/// Opcodes of control frames (link frames other than ack).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlOp {
    /// Handshake opening.
    Hello,
    /// Handshake acceptance.
    Welcome,
    /// Keep-alive probe.
    Ping,
    /// Keep-alive answer.
    Pong,
    /// Graceful close with a reason.
    Close,
    /// Flow-control credit for a stream (wire format §2.7).
    Credit,
    /// Publish/subscribe: subscribe, unsubscribe, unsubscribe all, delete a
    /// retained value (§2.8).
    Subscribe,
    /// Publish/subscribe: a publication, or a device-to-device message (§2.8).
    Publish,
    /// Publish/subscribe: a publication or device-to-device message delivered
    /// by the broker (§2.8).
    Deliver,
    /// Publish/subscribe: the broker's answer to a `subscribe` or `publish`
    /// frame that asked for one (§2.8).
    PubSubReply,
}

impl ControlOp {
    /// The opcode in the lead byte's nibble.
    pub const fn opcode(self) -> u8 {
        match self {
            ControlOp::Hello => 1,
            ControlOp::Welcome => 2,
            ControlOp::Ping => 3,
            ControlOp::Pong => 4,
            ControlOp::Close => 5,
            ControlOp::Credit => 7,
            ControlOp::Subscribe => 8,
            ControlOp::Publish => 9,
            ControlOp::Deliver => 10,
            ControlOp::PubSubReply => 11,
        }
    }

    /// The control operation of an opcode, if v1 defines it.
    pub const fn from_opcode(op: u8) -> Option<ControlOp> {
        Some(match op {
            1 => ControlOp::Hello,
            2 => ControlOp::Welcome,
            3 => ControlOp::Ping,
            4 => ControlOp::Pong,
            5 => ControlOp::Close,
            7 => ControlOp::Credit,
            8 => ControlOp::Subscribe,
            9 => ControlOp::Publish,
            10 => ControlOp::Deliver,
            11 => ControlOp::PubSubReply,
            _ => return None,
        })
    }
}

/// What a frame is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A message that expects no reply.
    OneWay,
    /// A request; the reply carries the same correlation id.
    Request,
    /// A successful reply.
    Response,
    /// A failed reply: the payload is an error body.
    Error,
    /// One item of a server stream.
    StreamItem,
    /// The end of a server stream (payload empty or an error body).
    StreamEnd,
    /// The requester no longer wants replies.
    Cancel,
    /// Cumulative acknowledgement of sequence numbers.
    Ack,
    /// A connection-level control frame.
    Control(ControlOp),
}

impl FrameKind {
    /// The 3-bit kind code of the lead byte.
    pub const fn code(self) -> u8 {
        match self {
            FrameKind::OneWay => 0,
            FrameKind::Request => 1,
            FrameKind::Response => 2,
            FrameKind::Error => 3,
            FrameKind::StreamItem => 4,
            FrameKind::StreamEnd => 5,
            FrameKind::Cancel => 6,
            FrameKind::Ack | FrameKind::Control(_) => 7,
        }
    }

    /// Whether frames of this kind carry a message type id.
    pub const fn has_type_id(self) -> bool {
        matches!(
            self,
            FrameKind::OneWay | FrameKind::Request | FrameKind::Response | FrameKind::StreamItem
        )
    }

    /// Whether frames of this kind carry a correlation id.
    pub const fn has_correlation(self) -> bool {
        matches!(
            self,
            FrameKind::Request
                | FrameKind::Response
                | FrameKind::Error
                | FrameKind::StreamItem
                | FrameKind::StreamEnd
                | FrameKind::Cancel
        )
    }

    /// A short lowercase name, as used in documentation and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            FrameKind::OneWay => "one-way",
            FrameKind::Request => "request",
            FrameKind::Response => "response",
            FrameKind::Error => "error",
            FrameKind::StreamItem => "stream-item",
            FrameKind::StreamEnd => "stream-end",
            FrameKind::Cancel => "cancel",
            FrameKind::Ack => "ack",
            FrameKind::Control(ControlOp::Hello) => "hello",
            FrameKind::Control(ControlOp::Welcome) => "welcome",
            FrameKind::Control(ControlOp::Ping) => "ping",
            FrameKind::Control(ControlOp::Pong) => "pong",
            FrameKind::Control(ControlOp::Close) => "close",
            FrameKind::Control(ControlOp::Credit) => "credit",
            FrameKind::Control(ControlOp::Subscribe) => "subscribe",
            FrameKind::Control(ControlOp::Publish) => "publish",
            FrameKind::Control(ControlOp::Deliver) => "deliver",
            FrameKind::Control(ControlOp::PubSubReply) => "pubsub-reply",
        }
    }
}

/// A decoded or to-be-encoded frame header.
///
/// `type_id` is meaningful only for kinds with [`FrameKind::has_type_id`] and
/// `correlation` only for kinds with [`FrameKind::has_correlation`]; decoding sets
/// the others to 0 and encoding ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// The frame kind.
    pub kind: FrameKind,
    /// The message type id (1 ..= 2^32-1) for kinds that carry one.
    pub type_id: u32,
    /// The correlation id for kinds that carry one.
    pub correlation: u64,
    /// The sequence number for reliable delivery, when present.
    pub seq: Option<u64>,
    /// Fragment marker: the payload continues in the next frame.
    pub more: bool,
    /// The call header, on request frames that call a service method.
    pub call: Option<CallHeader>,
    /// On stream-item frames: the payload is a batch of items, each
    /// length-prefixed (wire format §2.7, [`crate::batch`]).
    pub batch: bool,
}

impl FrameHeader {
    /// The most bytes any header takes: lead byte, flags byte, type id (5),
    /// correlation id (10), sequence number (10) and a call header (service 5,
    /// method 5, deadline 10) — each varint at its widest.
    pub const MAX_ENCODED_LEN: usize = 1 + 1 + 5 + 10 + 10 + 5 + 5 + 10;

    const fn new(kind: FrameKind, type_id: u32, correlation: u64) -> Self {
        FrameHeader {
            kind,
            type_id,
            correlation,
            seq: None,
            more: false,
            call: None,
            batch: false,
        }
    }

    /// A one-way message header.
    pub const fn one_way(type_id: u32) -> Self {
        Self::new(FrameKind::OneWay, type_id, 0)
    }

    /// A request header.
    pub const fn request(type_id: u32, correlation: u64) -> Self {
        Self::new(FrameKind::Request, type_id, correlation)
    }

    /// A response header.
    pub const fn response(type_id: u32, correlation: u64) -> Self {
        Self::new(FrameKind::Response, type_id, correlation)
    }

    /// An error-response header.
    pub const fn error(correlation: u64) -> Self {
        Self::new(FrameKind::Error, 0, correlation)
    }

    /// A stream-item header.
    pub const fn stream_item(type_id: u32, correlation: u64) -> Self {
        Self::new(FrameKind::StreamItem, type_id, correlation)
    }

    /// A stream-end header.
    pub const fn stream_end(correlation: u64) -> Self {
        Self::new(FrameKind::StreamEnd, 0, correlation)
    }

    /// A cancel header.
    pub const fn cancel(correlation: u64) -> Self {
        Self::new(FrameKind::Cancel, 0, correlation)
    }

    /// An ack header (the payload is the acknowledged sequence number).
    pub const fn ack() -> Self {
        Self::new(FrameKind::Ack, 0, 0)
    }

    /// A control header.
    pub const fn control(op: ControlOp) -> Self {
        Self::new(FrameKind::Control(op), 0, 0)
    }

    /// This header with a sequence number.
    pub const fn with_seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// A request header that calls a service method.
    pub const fn call(type_id: u32, correlation: u64, call: CallHeader) -> Self {
        let mut h = Self::new(FrameKind::Request, type_id, correlation);
        h.call = Some(call);
        h
    }

    /// This header with the fragment marker set or cleared.
    pub const fn with_more(mut self, more: bool) -> Self {
        self.more = more;
        self
    }

    /// A stream-item header whose payload is a batch of items (§2.7).
    pub const fn stream_batch(type_id: u32, correlation: u64) -> Self {
        let mut h = Self::new(FrameKind::StreamItem, type_id, correlation);
        h.batch = true;
        h
    }

    fn flags(&self) -> u8 {
        (if self.seq.is_some() { FLAG_SEQ } else { 0 })
            | (if self.more { FLAG_MORE } else { 0 })
            | (if self.call.is_some() { FLAG_CALL } else { 0 })
            | if self.batch { FLAG_BATCH } else { 0 }
    }

    /// Number of bytes [`FrameHeader::encode`] writes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        let mut n = 1;
        if self.flags() != 0 {
            n += 1;
        }
        if self.kind.has_type_id() && self.type_id >= 16 {
            n += varint::len(u64::from(self.type_id));
        }
        if self.kind.has_correlation() {
            n += varint::len(self.correlation);
        }
        if let Some(seq) = self.seq {
            n += varint::len(seq);
        }
        if let Some(call) = &self.call {
            n += call.encoded_len();
        }
        n
    }

    /// Checks that the header can be encoded (a type id where the kind needs one).
    #[inline]
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.kind.has_type_id() && self.type_id == 0 {
            return Err(EncodeError::InvalidHeader {
                reason: "type id 0 on a frame kind that carries a message",
            });
        }
        if let Some(call) = &self.call {
            if self.kind != FrameKind::Request {
                return Err(EncodeError::InvalidHeader {
                    reason: "a call header on a frame that is not a request",
                });
            }
            if call.method == 0 || call.method > 65535 {
                return Err(EncodeError::InvalidHeader {
                    reason: "method id outside 1 ..= 65535",
                });
            }
        }
        if self.batch && self.kind != FrameKind::StreamItem {
            return Err(EncodeError::InvalidHeader {
                reason: "the batch flag on a frame that is not a stream item",
            });
        }
        Ok(())
    }

    /// Writes the header. Fails only when [`FrameHeader::validate`] does.
    #[inline]
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) -> Result<(), EncodeError> {
        self.validate()?;
        let flags = self.flags();
        let nibble = match self.kind {
            FrameKind::Ack => 0,
            FrameKind::Control(op) => op.opcode(),
            k if k.has_type_id() && self.type_id < 16 => self.type_id as u8,
            _ => 0,
        };
        let x = if flags != 0 { X_BIT } else { 0 };
        buf.put_u8(x | (self.kind.code() << 4) | nibble);
        if flags != 0 {
            buf.put_u8(flags);
        }
        if self.kind.has_type_id() && self.type_id >= 16 {
            varint::put(buf, u64::from(self.type_id));
        }
        if self.kind.has_correlation() {
            varint::put(buf, self.correlation);
        }
        if let Some(seq) = self.seq {
            varint::put(buf, seq);
        }
        if let Some(call) = &self.call {
            varint::put(buf, u64::from(call.service));
            varint::put(buf, u64::from(call.method));
            varint::put(buf, call.deadline_ms);
        }
        Ok(())
    }

    /// Decodes a header from the start of a frame; returns it and its length.
    pub fn decode(frame: &[u8]) -> Result<(FrameHeader, usize), DecodeError> {
        let Some(&lead) = frame.first() else {
            return Err(DecodeError::UnexpectedEnd { at: 0, needed: 1 });
        };
        let mut pos = 1;
        let code = (lead >> 4) & 7;
        let nibble = lead & 0x0f;
        let kind = match code {
            0 => FrameKind::OneWay,
            1 => FrameKind::Request,
            2 => FrameKind::Response,
            3 => FrameKind::Error,
            4 => FrameKind::StreamItem,
            5 => FrameKind::StreamEnd,
            6 => FrameKind::Cancel,
            _ if nibble == 0 => FrameKind::Ack,
            _ => match ControlOp::from_opcode(nibble) {
                Some(op) => FrameKind::Control(op),
                None => {
                    return Err(DecodeError::UnknownLinkOpcode {
                        at: 0,
                        opcode: nibble,
                    });
                }
            },
        };
        let mut header = FrameHeader::new(kind, 0, 0);
        if lead & X_BIT != 0 {
            let Some(&flags) = frame.get(pos) else {
                return Err(DecodeError::UnexpectedEnd { at: pos, needed: 1 });
            };
            // CALL is defined on requests only, BATCH on stream items only;
            // elsewhere they are reserved.
            let known = match kind {
                FrameKind::Request => FLAGS_KNOWN | FLAG_CALL,
                FrameKind::StreamItem => FLAGS_KNOWN | FLAG_BATCH,
                _ => FLAGS_KNOWN,
            };
            if flags & !known != 0 {
                return Err(DecodeError::ReservedFlags { at: pos, flags });
            }
            if flags == 0 {
                return Err(DecodeError::NonCanonicalHeader {
                    at: pos,
                    reason: "extension byte with no flag set",
                });
            }
            header.more = flags & FLAG_MORE != 0;
            header.batch = flags & FLAG_BATCH != 0;
            if flags & FLAG_SEQ != 0 {
                header.seq = Some(0);
            }
            if flags & FLAG_CALL != 0 {
                header.call = Some(CallHeader {
                    service: 0,
                    method: 0,
                    deadline_ms: 0,
                });
            }
            pos += 1;
        }
        if kind.has_type_id() {
            if nibble != 0 {
                header.type_id = u32::from(nibble);
            } else {
                let at = pos;
                let (v, n) = varint::get(&frame[pos..], pos)?;
                pos += n;
                if v < 16 {
                    return Err(if v == 0 {
                        DecodeError::InvalidTypeId { at, value: v }
                    } else {
                        DecodeError::NonCanonicalHeader {
                            at,
                            reason: "type id below 16 written as a varint",
                        }
                    });
                }
                header.type_id =
                    u32::try_from(v).map_err(|_| DecodeError::InvalidTypeId { at, value: v })?;
            }
        } else if code != 7 && nibble != 0 {
            return Err(DecodeError::NonCanonicalHeader {
                at: 0,
                reason: "nibble must be 0 for this frame kind",
            });
        }
        if kind.has_correlation() {
            let (v, n) = varint::get(&frame[pos..], pos)?;
            header.correlation = v;
            pos += n;
        }
        if header.seq.is_some() {
            let (v, n) = varint::get(&frame[pos..], pos)?;
            header.seq = Some(v);
            pos += n;
        }
        if header.call.is_some() {
            let at = pos;
            let (service, n) = varint::get(&frame[pos..], pos)?;
            pos += n;
            let service = u32::try_from(service).map_err(|_| DecodeError::IntegerOutOfRange {
                at,
                value: service,
                ty: "service index (0 ..= 2^32-1)",
            })?;
            let at = pos;
            let (method, n) = varint::get(&frame[pos..], pos)?;
            pos += n;
            if method == 0 || method > 65535 {
                return Err(DecodeError::IntegerOutOfRange {
                    at,
                    value: method,
                    ty: "method id (1 ..= 65535)",
                });
            }
            let (deadline_ms, n) = varint::get(&frame[pos..], pos)?;
            pos += n;
            header.call = Some(CallHeader {
                service,
                method: method as u32,
                deadline_ms,
            });
        }
        Ok((header, pos))
    }
}

/// An error body (wire format §2.4): the payload of error responses, failed
/// stream ends and close frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// The error code (0-999 protocol, 1000+ application).
    pub code: u64,
    /// A human-readable message.
    pub message: &'a str,
}

impl<'a> ErrorBody<'a> {
    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        varint::len(self.code) + super::write::delimited_len(self.message.len())
    }

    /// Writes the body.
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, self.code);
        super::write::len_prefixed(buf, self.message.as_bytes());
    }

    /// Decodes a body that fills `payload` exactly.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = super::Reader::new(payload);
        let code = r.uvarint()?;
        let message = r.str()?;
        r.finish("error body")?;
        Ok(ErrorBody { code, message })
    }
}

/// The payload of a credit link frame (wire format §2.7): the receiver of a
/// stream lets its sender send items costing `bytes` more
/// ([`crate::batch::item_cost`]) on the call with `correlation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credit {
    /// The correlation id of the call whose stream the credit is for; its
    /// parity tells which of the call's two streams.
    pub correlation: u64,
    /// How many more bytes of items the sender may send; a credit of 0 does
    /// not exist.
    pub bytes: NonZeroU64,
}

impl Credit {
    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        varint::len(self.correlation) + varint::len(self.bytes.get())
    }

    /// Writes the payload.
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, self.correlation);
        varint::put(buf, self.bytes.get());
    }

    /// Decodes a payload that fills `payload` exactly. A credit of 0 bytes is
    /// [`DecodeError::IntegerOutOfRange`].
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = super::Reader::new(payload);
        let correlation = r.uvarint()?;
        let at = r.position();
        let bytes = r.uvarint()?;
        let bytes = NonZeroU64::new(bytes).ok_or(DecodeError::IntegerOutOfRange {
            at,
            value: 0,
            ty: "credit bytes (1 ..= 2^64-1)",
        })?;
        r.finish("credit")?;
        Ok(Credit { correlation, bytes })
    }
}

/// The payload of an ack link frame (opcode 0, wire format §2.2 and
/// `docs/reliability.md`): every frame its receiver got with a sequence
/// number up to `received` has arrived (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The highest sequence number received (0: none yet).
    pub received: u64,
}

impl Ack {
    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        varint::len(self.received)
    }

    /// Writes the payload.
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, self.received);
    }

    /// Decodes a payload that fills `payload` exactly.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = super::Reader::new(payload);
        let received = r.uvarint()?;
        r.finish("ack")?;
        Ok(Ack { received })
    }
}
