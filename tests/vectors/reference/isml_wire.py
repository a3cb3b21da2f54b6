#!/usr/bin/env python3
"""Independent reference implementation of the isml wire format, version 1.

Written from docs/wire-format.md and tests/vectors/README.md alone (no Rust code
was read).  Standard library only, Python 3.11.

Run as a script it prints the test-vector file (tests/vectors/wire-v1.json) to
stdout.  Before printing, every valid vector is decoded back from its own hex
and compared with its value, and every invalid vector is decoded and must fail
with the named error; any mismatch aborts with an AssertionError.

    python3 tests/vectors/reference/isml_wire.py > tests/vectors/wire-v1.json

With `--fragments` it prints the fragment-reassembly vectors (§2.6,
tests/vectors/fragments-v1.json) instead, after the same kind of self-check:

    python3 tests/vectors/reference/isml_wire.py --fragments > tests/vectors/fragments-v1.json
"""

from __future__ import annotations

import base64
import json
import math
import struct
import sys

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

ERROR_NAMES = {
    "unexpected_end", "varint_overflow", "non_canonical_varint",
    "length_out_of_bounds", "integer_out_of_range", "invalid_utf8",
    "invalid_bool", "depth_exceeded", "frame_too_large", "reserved_flags",
    "unknown_link_opcode", "non_canonical_header", "invalid_type_id",
    "bad_presence", "class_mismatch", "union_class_absent", "map_key_order",
    "content_length", "ragged_list", "max_len", "range", "corrupt_frame",
}


class WireError(Exception):
    """A decoding (or encoding) error; `name` is one of ERROR_NAMES."""

    def __init__(self, name: str, offset: int | None = None, detail: str = ""):
        assert name in ERROR_NAMES, name
        self.name = name
        self.offset = offset
        self.detail = detail
        super().__init__(f"{name} at {offset}: {detail}")


class EncodeError(Exception):
    """The encoder refuses a value (max_len / range / bad value)."""


# ---------------------------------------------------------------------------
# §1 Building blocks
# ---------------------------------------------------------------------------

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
MAX_DEPTH = 32
MAX_STREAM_FRAME = 1 << 20


def uvarint(n: int) -> bytes:
    if not 0 <= n <= U64_MAX:
        raise EncodeError(f"uvarint out of range: {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> int:
    if not -(1 << 63) <= n < (1 << 63):
        raise EncodeError(f"svarint out of range: {n}")
    return ((n << 1) ^ (n >> 63)) & U64_MAX


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def svarint(n: int) -> bytes:
    return uvarint(zigzag(n))


class Reader:
    """A cursor over buf[pos:end]; `end` is the end of the enclosing content."""

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WireError("unexpected_end", self.pos)
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise WireError("unexpected_end", self.pos, f"need {n} bytes")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def uvarint(self) -> int:
        start = self.pos
        result = 0
        for i in range(10):
            b = self.byte()
            if i == 9 and b > 1:
                raise WireError("varint_overflow", start)
            result |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise WireError("non_canonical_varint", start)
                return result
        raise AssertionError("unreachable")

    def svarint(self) -> int:
        return unzigzag(self.uvarint())

    def length(self) -> int:
        """A declared length, checked against the remaining bytes."""
        at = self.pos
        n = self.uvarint()
        if n > self.remaining():
            raise WireError("length_out_of_bounds", at, f"length {n} > {self.remaining()} remaining")
        return n

    def sub(self) -> "Reader":
        """uvarint(n) then n bytes of content: returns a reader over the content."""
        n = self.length()
        r = Reader(self.buf, self.pos, self.pos + n)
        self.pos += n
        return r

    def finish(self, what: str = "content") -> None:
        if self.pos != self.end:
            raise WireError("content_length", self.pos, f"{self.end - self.pos} trailing bytes in {what}")


def f32_bits(v) -> int:
    if isinstance(v, str):
        v = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[v]
    return struct.unpack("<I", struct.pack("<f", v))[0]


def f64_bits(v) -> int:
    if isinstance(v, str):
        v = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[v]
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def float_json(x: float):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def f32_from_bits(bits: int):
    return float_json(struct.unpack("<f", struct.pack("<I", bits))[0])


def f64_from_bits(bits: int):
    return float_json(struct.unpack("<d", struct.pack("<Q", bits))[0])


# ---------------------------------------------------------------------------
# §2 Frames
# ---------------------------------------------------------------------------

KINDS = {"one-way": 0, "request": 1, "response": 2, "error": 3,
         "stream-item": 4, "stream-end": 5, "cancel": 6}
KIND_NAMES = {v: k for k, v in KINDS.items()}
# Opcode 6 is reserved (§2.2): a v1 decoder rejects it like 12 ..= 15.
LINK_OPCODES = {"ack": 0, "hello": 1, "welcome": 2, "ping": 3, "pong": 4, "close": 5,
                "credit": 7, "subscribe": 8, "publish": 9, "deliver": 10, "pubsub-reply": 11}
LINK_NAMES = {v: k for k, v in LINK_OPCODES.items()}
HAS_TYPE_ID = {0, 1, 2, 4}
HAS_CORRELATION = {1, 2, 3, 4, 5, 6}
SEQ = 0x01
MORE = 0x02
CALL = 0x04  # §2.3: on request frames (kind 1) only; reserved on every other kind
BATCH = 0x08  # §2.3: on stream-item frames (kind 4) only; reserved on every other kind
U16_MAX = (1 << 16) - 1


def call(service: int, method: int, deadline_ms: int = 0) -> dict:
    """The call header of §2.7, as the `call` field of a header's JSON."""
    return {"service": service, "method": method, "deadline_ms": deadline_ms}


def header(kind: str, type_id: int | None = None, correlation: int | None = None,
           seq: int | None = None, more: bool = False, call_: dict | None = None,
           batch: bool = False) -> dict:
    """A header's JSON.  `call` is present only when CALL is set (request
    frames, §2.7), so a header without one has the same JSON as before §2.7;
    likewise `batch` only when BATCH is set (stream-item frames)."""
    h = {"kind": kind}
    k = KINDS.get(kind, 7)
    if k in HAS_TYPE_ID:
        h["type_id"] = type_id
    if k in HAS_CORRELATION:
        h["correlation"] = correlation
    if call_ is not None:
        h["call"] = call_
    h["seq"] = seq
    h["more"] = more
    if batch:
        h["batch"] = True
    return h


def encode_header(h: dict) -> bytes:
    kind = h["kind"]
    c = h.get("call")
    ext = ((SEQ if h.get("seq") is not None else 0) | (MORE if h.get("more") else 0)
           | (CALL if c is not None else 0) | (BATCH if h.get("batch") else 0))
    if h.get("batch") and kind != "stream-item":
        # §2.3: BATCH exists on stream-item frames only.
        raise EncodeError(f"BATCH on a {kind} frame")
    if c is not None:
        # §2.7: a call header exists on request frames only, and its fields
        # have the ranges a decoder checks.
        if kind != "request":
            raise EncodeError(f"call header on a {kind} frame")
        if not 0 <= c["service"] <= U32_MAX or not 1 <= c["method"] <= U16_MAX \
                or not 0 <= c["deadline_ms"] <= U64_MAX:
            raise EncodeError(f"call header {c}")
    out = bytearray()
    if kind in LINK_OPCODES:
        k, nibble = 7, LINK_OPCODES[kind]
    else:
        k, nibble = KINDS[kind], 0
    tid_varint = None
    if k in HAS_TYPE_ID:
        tid = h["type_id"]
        if not 1 <= tid <= U32_MAX:
            raise EncodeError(f"type id {tid}")
        if tid < 16:
            nibble = tid
        else:
            tid_varint = tid
    out.append((0x80 if ext else 0) | (k << 4) | nibble)
    if ext:
        out.append(ext)
    if tid_varint is not None:
        out += uvarint(tid_varint)
    if k in HAS_CORRELATION:
        out += uvarint(h["correlation"])
    if h.get("seq") is not None:
        out += uvarint(h["seq"])
    if c is not None:
        # §2.1 item 5, §2.7: after the correlation id and the sequence number.
        out += uvarint(c["service"]) + uvarint(c["method"]) + uvarint(c["deadline_ms"])
    return bytes(out)


def decode_header(r: Reader) -> dict:
    lead_at = r.pos
    lead = r.byte()
    x = lead >> 7
    k = (lead >> 4) & 7
    nibble = lead & 0x0F
    if k == 7:
        if nibble not in LINK_NAMES:
            raise WireError("unknown_link_opcode", lead_at, f"opcode {nibble}")
        kind = LINK_NAMES[nibble]
    else:
        kind = KIND_NAMES[k]
        if k not in HAS_TYPE_ID and nibble != 0:
            raise WireError("non_canonical_header", lead_at, f"nibble {nibble} on kind {kind}")
    ext = 0
    if x:
        ext_at = r.pos
        ext = r.byte()
        if ext & ~(SEQ | MORE | CALL | BATCH):
            raise WireError("reserved_flags", ext_at, f"extension byte {ext:02x}")
        if ext & CALL and k != KINDS["request"]:
            # §2.3, §2.7: bit 2 is CALL on request frames only, reserved on
            # every other kind (link frames included).
            raise WireError("reserved_flags", ext_at, f"CALL on kind {k}")
        if ext & BATCH and k != KINDS["stream-item"]:
            # §2.3: bit 3 is BATCH on stream-item frames only.
            raise WireError("reserved_flags", ext_at, f"BATCH on kind {k}")
        if ext == 0:
            raise WireError("non_canonical_header", ext_at, "extension byte 00")
    type_id = None
    if k in HAS_TYPE_ID:
        if nibble:
            type_id = nibble
        else:
            at = r.pos
            type_id = r.uvarint()
            if type_id == 0 or type_id > U32_MAX:
                raise WireError("invalid_type_id", at, f"type id {type_id}")
            if type_id < 16:
                raise WireError("non_canonical_header", at, f"type id {type_id} as varint")
    correlation = r.uvarint() if k in HAS_CORRELATION else None
    seq = r.uvarint() if ext & SEQ else None
    c = decode_call_header(r) if ext & CALL else None
    return header(kind, type_id, correlation, seq, bool(ext & MORE), c, bool(ext & BATCH))


def decode_call_header(r: Reader) -> dict:
    """§2.7: uvarint service (0 ..= 2^32-1), uvarint method (1 ..= 65535),
    uvarint deadline_ms (any u64).  A value out of its range is *integer out of
    range*; a call header cut short is *unexpected end* (§3: a header that
    does not fit inside the frame)."""
    at = r.pos
    service = r.uvarint()
    if service > U32_MAX:
        raise WireError("integer_out_of_range", at, f"service index {service}")
    at = r.pos
    method = r.uvarint()
    if not 1 <= method <= U16_MAX:
        raise WireError("integer_out_of_range", at, f"method id {method}")
    deadline_ms = r.uvarint()
    return call(service, method, deadline_ms)


# §2.7 flow control: the payload of a credit link frame (opcode 7).  The
# document states `bytes >= 1` and the error names: bytes 0 is *integer out of
# range*, bytes after the two varints are *content length* (as after an error
# body, §7).

def encode_credit(correlation: int, n: int) -> bytes:
    if not 1 <= n <= U64_MAX:
        raise EncodeError(f"credit of {n} bytes")
    return uvarint(correlation) + uvarint(n)


def decode_credit(r: Reader) -> dict:
    correlation = r.uvarint()
    at = r.pos
    n = r.uvarint()
    if n == 0:
        raise WireError("integer_out_of_range", at, "credit of 0 bytes")
    r.finish("credit payload")
    return {"correlation": correlation, "bytes": n}


# §2.2 reliable delivery: the payload of an ack link frame (opcode 0) is one
# uvarint, the highest sequence number received (cumulative).  Bytes after it
# are *content length*, as after a credit.

def encode_ack(received: int) -> bytes:
    return uvarint(received)


def decode_ack(r: Reader) -> dict:
    received = r.uvarint()
    r.finish("ack payload")
    return {"received": received}


# §2.7 batches: the payload of a stream-item frame with BATCH is one or more
# items, each uvarint(length) then the item's bytes.  Every item costs its
# length plus 8 of the stream's credit.

ITEM_OVERHEAD = 8


def item_cost(item: bytes) -> int:
    return len(item) + ITEM_OVERHEAD


def encode_batch(items: list[bytes]) -> bytes:
    if not items:
        raise EncodeError("a batch without items")
    return b"".join(uvarint(len(i)) + i for i in items)


def decode_batch(r: Reader) -> list[bytes]:
    """The items of a batch payload that fills the reader: an empty payload is
    *unexpected end*; a length past the end is *length out of bounds*."""
    if r.pos >= len(r.buf):
        raise WireError("unexpected_end", r.pos, "a batch without items")
    items = []
    while r.pos < len(r.buf):
        at = r.pos
        n = r.uvarint()
        if n > len(r.buf) - r.pos:
            raise WireError("length_out_of_bounds", at, f"item of {n} bytes")
        items.append(bytes(r.buf[r.pos:r.pos + n]))
        r.pos += n
    return items


def encode_error_body(code: int, message: str) -> bytes:
    m = message.encode("utf-8")
    return uvarint(code) + uvarint(len(m)) + m


def decode_error_body(r: Reader) -> dict:
    code = r.uvarint()
    n = r.length()
    at = r.pos
    raw = r.take(n)
    try:
        msg = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("invalid_utf8", at) from None
    return {"code": code, "message": msg}


# ---------------------------------------------------------------------------
# §3 Stream framing
# ---------------------------------------------------------------------------


def encode_stream_frame(h: dict, payload: bytes) -> bytes:
    frame = encode_header(h) + payload
    return uvarint(len(frame) - 1) + frame


def decode_stream_frame(buf: bytes, max_frame: int = MAX_STREAM_FRAME) -> dict:
    r = Reader(buf)
    at = r.pos
    L = r.uvarint()
    if L + 1 > max_frame:
        raise WireError("frame_too_large", at, f"{L + 1} > {max_frame}")
    if L + 1 > r.remaining():
        raise WireError("unexpected_end", r.pos, "frame incomplete")
    fr = Reader(buf, r.pos, r.pos + L + 1)
    h = decode_header(fr)
    payload = buf[fr.pos:fr.end]
    r.pos = fr.end
    if r.remaining():
        raise WireError("content_length", r.pos, "bytes after the frame")
    return {"header": h, "payload": payload.hex()}


def decode_stream(buf: bytes, max_frame: int = MAX_STREAM_FRAME) -> list[dict]:
    """§3 applied to a whole byte stream: every frame, in order.  The stream
    must end on a frame boundary."""
    r = Reader(buf)
    frames = []
    while r.remaining():
        at = r.pos
        L = r.uvarint()
        if L + 1 > max_frame:
            raise WireError("frame_too_large", at, f"{L + 1} > {max_frame}")
        if L + 1 > r.remaining():
            raise WireError("unexpected_end", r.pos, "frame incomplete")
        fr = Reader(buf, r.pos, r.pos + L + 1)
        h = decode_header(fr)
        frames.append({"header": h, "payload": buf[fr.pos:fr.end].hex()})
        r.pos = fr.end
    return frames


# ---------------------------------------------------------------------------
# §2.6 Fragments: reassembly on receipt
# ---------------------------------------------------------------------------

FRAGMENT_ERRORS = {"interleaved", "too_large", "truncated"}
MAX_MESSAGE = 1 << 20  # §2.6 rule 6: 1 MiB by default in the reference runtime


class FragmentError(Exception):
    """A §2.6 violation.  `frame` is the index of the frame at which it is
    found (for *truncated*, the number of frames: the end of the stream);
    `open` is the index of the first frame of the message concerned: the
    message being joined, or for *too large* the refused message itself (the
    frame's own index when it is a whole message, rule 6)."""

    def __init__(self, name: str, frame: int, open_: int, length: int | None = None):
        assert name in FRAGMENT_ERRORS, name
        self.name = name
        self.frame = frame
        self.open = open_
        self.length = length
        super().__init__(f"{name} at frame {frame} (message opened at frame {open_})")

    def to_json(self) -> dict:
        e = {"kind": self.name, "frame": self.frame, "open": self.open}
        if self.length is not None:
            e["len"] = self.length
        return e


def frame_key(h: dict) -> tuple[tuple[int, int], int, int]:
    """§2.6 rule 1: the key is (kind, type id, correlation id), "the fields a
    kind does not carry count as 0"; for link frames (kind 7) the opcode is
    part of the kind, so an ack, a ping and a pong have different keys.  The
    kind is written here as (3-bit kind of §2.1, link opcode or 0)."""
    name = h["kind"]
    kind = (7, LINK_OPCODES[name]) if name in LINK_OPCODES else (KINDS[name], 0)
    return (kind, h.get("type_id") or 0, h.get("correlation") or 0)


class Reassembler:
    """§2.6 for one direction of one connection: at most one fragmented
    message in progress; complete frames with another key are whole messages,
    delivered when they arrive.  Sequence numbers are not looked at (rule 5).
    Every message, whole or joined, is bounded by `max_message` payload bytes
    (rule 6)."""

    def __init__(self, max_message: int = MAX_MESSAGE):
        self.max_message = max_message
        self.open: tuple[int, dict] | None = None  # (index, header) of the first fragment
        self.parts: list[int] = []
        self.buf = bytearray()

    def push(self, index: int, h: dict, payload: bytes) -> dict | None:
        """Takes frame number `index`; returns the message it completes, if any."""
        if self.open is not None:
            first, fh = self.open
            if frame_key(h) == frame_key(fh):
                # Rule 2: same key, a fragment of the message in progress (the
                # last one when MORE is clear).  Rule 6: bounded before
                # buffering, the last fragment included.
                n = len(self.buf) + len(payload)
                if n > self.max_message:
                    raise FragmentError("too_large", index, first, n)
                self.buf += payload
                self.parts.append(index)
                if h["more"]:
                    return None
                # Rules 4 and 5: the first fragment's header (and its SEQ, or
                # none), MORE cleared; delivered when the last fragment arrives.
                msg = {"header": dict(fh, more=False), "payload": bytes(self.buf).hex(),
                       "fragments": self.parts}
                self.open, self.parts, self.buf = None, [], bytearray()
                return msg
            if h["more"]:
                # Rule 3: a second fragmented message while one is in progress,
                # whatever its size (checked before the size).
                raise FragmentError("interleaved", index, first)
            # Rule 3: a complete frame with another key is a whole message,
            # delivered now; the message in progress stays open.
            return self._whole(index, h, payload)
        if h["more"]:
            # Rule 2: the first fragment.  Rule 6 applies to it as well.
            if len(payload) > self.max_message:
                raise FragmentError("too_large", index, index, len(payload))
            self.open, self.parts, self.buf = (index, h), [index], bytearray(payload)
            return None
        return self._whole(index, h, payload)

    def _whole(self, index: int, h: dict, payload: bytes) -> dict:
        """A frame that is a message by itself.  Rule 6 bounds it too."""
        if len(payload) > self.max_message:
            raise FragmentError("too_large", index, index, len(payload))
        return {"header": h, "payload": payload.hex(), "fragments": [index]}

    def finish(self, n_frames: int) -> None:
        """Rule 7: the stream ended after `n_frames` frames."""
        if self.open is not None:
            raise FragmentError("truncated", n_frames, self.open[0])


def reassemble(frames: list[dict], max_message: int) -> tuple[list[dict], dict | None]:
    """Feeds frames in order; stops at the first error (the connection is
    closed, §2.6).  Returns the messages delivered and the error, if any."""
    r = Reassembler(max_message)
    out = []
    try:
        for i, f in enumerate(frames):
            m = r.push(i, f["header"], bytes.fromhex(f["payload"]))
            if m is not None:
                out.append(m)
        r.finish(len(frames))
    except FragmentError as e:
        return out, e.to_json()
    return out, None


# ---------------------------------------------------------------------------
# §4 Serial framing: CRC-32C and COBS
# ---------------------------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def cobs_encode(data: bytes) -> bytes:
    """COBS as in §4.  The input is treated as data + an implied trailing 00;
    every block with c < 255 carries a 00, and the last block's 00 is the one
    dropped.  Hence input ending in a 254-byte non-zero run ends `ff <254> 01`."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(enc: bytes) -> bytes:
    if not enc:
        raise WireError("corrupt_frame", 0, "empty COBS block")
    out = bytearray()
    i = 0
    last_code = 0
    while i < len(enc):
        c = enc[i]
        if c == 0:
            raise WireError("corrupt_frame", i, "00 inside a COBS block")
        if i + c > len(enc):
            raise WireError("corrupt_frame", i, "COBS code past the end")
        data = enc[i + 1:i + c]
        if 0 in data:
            raise WireError("corrupt_frame", i, "00 inside a COBS block")
        out += data
        if c < 255:
            out.append(0)
        last_code = c
        i += c
    if last_code < 255:
        out.pop()  # the final implied 00
    return bytes(out)


def encode_serial_frame(address: int | None, h: dict, payload: bytes) -> bytes:
    raw = (bytes([address]) if address is not None else b"") + encode_header(h) + payload
    raw += struct.pack("<I", crc32c(raw))
    return cobs_encode(raw) + b"\x00"


def decode_serial_frame(buf: bytes, addressed: bool) -> dict:
    if not buf or buf[-1] != 0:
        raise WireError("unexpected_end", len(buf), "no 00 delimiter")
    body = buf[:-1]
    if 0 in body:
        raise WireError("corrupt_frame", body.index(0), "more than one frame")
    raw = cobs_decode(body)
    minimum = 1 + 4 + (1 if addressed else 0)
    if len(raw) < minimum:
        raise WireError("corrupt_frame", 0, f"decoded {len(raw)} bytes < {minimum}")
    if crc32c(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
        raise WireError("corrupt_frame", 0, "CRC mismatch")
    address = raw[0] if addressed else None
    frame = raw[1 if addressed else 0:-4]
    r = Reader(frame)
    h = decode_header(r)
    return {"address": address, "header": h, "payload": frame[r.pos:].hex()}


# ---------------------------------------------------------------------------
# Types (README "Types in value and fingerprint vectors")
# ---------------------------------------------------------------------------

SCALARS = {"bool", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
           "f32", "f64", "string", "bytes"}
INT_RANGES = {
    "u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, U32_MAX), "u64": (0, U64_MAX),
    "i8": (-0x80, 0x7F), "i16": (-0x8000, 0x7FFF), "i32": (-(1 << 31), (1 << 31) - 1),
    "i64": (-(1 << 63), (1 << 63) - 1),
}
SIGNED = {"i8", "i16", "i32", "i64"}


def parse_type(s: str):
    """Schema syntax -> tuple: ('scalar', n) ('optional', T) ('list', T)
    ('map', K, V) ('array', T, N) ('named', name)."""
    toks = []
    i = 0
    while i < len(s):
        c = s[i]
        if c.isspace():
            i += 1
        elif c in "<>,":
            toks.append(c)
            i += 1
        else:
            j = i
            while j < len(s) and (s[j].isalnum() or s[j] == "_"):
                j += 1
            if j == i:
                raise ValueError(f"bad type {s!r}")
            toks.append(s[i:j])
            i = j
    pos = 0

    def expect(t):
        nonlocal pos
        if pos >= len(toks) or toks[pos] != t:
            raise ValueError(f"expected {t} in {s!r}")
        pos += 1

    def ty():
        nonlocal pos
        name = toks[pos]
        pos += 1
        if name in ("optional", "list"):
            expect("<")
            inner = ty()
            expect(">")
            return (name, inner)
        if name == "map":
            expect("<")
            k = ty()
            expect(",")
            v = ty()
            expect(">")
            return ("map", k, v)
        if name == "array":
            expect("<")
            inner = ty()
            expect(",")
            n = int(toks[pos])
            pos += 1
            expect(">")
            return ("array", inner, n)
        if name in SCALARS:
            return ("scalar", name)
        return ("named", name)

    t = ty()
    if pos != len(toks):
        raise ValueError(f"trailing tokens in {s!r}")
    return t


def type_str(t) -> str:
    tag = t[0]
    if tag in ("scalar", "named"):
        return t[1]
    if tag in ("optional", "list"):
        return f"{tag}<{type_str(t[1])}>"
    if tag == "map":
        return f"map<{type_str(t[1])}, {type_str(t[2])}>"
    return f"array<{type_str(t[1])}, {t[2]}>"


FIXED_WIDTH = {"u8": 1, "i8": 1, "bool": 1, "f32": 4, "f64": 8}


class Schema:
    def __init__(self, types: dict):
        self.types = types
        for name, d in types.items():
            assert len(d) == 1 and next(iter(d)) in ("message", "enum", "union"), name

    def kind(self, name):
        d = self.types[name]
        return next(iter(d))

    def defn(self, name):
        d = self.types[name]
        return d[next(iter(d))]

    def fields(self, name):
        return sorted(self.defn(name)["fields"], key=lambda f: f["tag"])

    def variants(self, name):
        return sorted(self.defn(name)["variants"], key=lambda f: f["tag"])

    # --- classes (§5.1) ---
    def type_class(self, t) -> int:
        if t[0] == "scalar":
            n = t[1]
            if n == "f32":
                return 2
            if n in ("f64", "string", "bytes"):
                return 3
            return 1
        if t[0] == "named":
            return 1 if self.kind(t[1]) == "enum" else 3
        if t[0] == "optional":
            raise EncodeError("class of a nested optional is not defined by §5.1")
        return 3

    # --- defaults (§5.2) ---
    def default(self, t):
        if t[0] == "scalar":
            n = t[1]
            if n == "bool":
                return False
            if n in ("f32", "f64"):
                return 0.0
            if n == "string":
                return ""
            if n == "bytes":
                return ""
            return 0
        if t[0] == "optional":
            return None
        if t[0] == "list":
            return []
        if t[0] == "map":
            return {}
        if t[0] == "array":
            return [self.default(t[1]) for _ in range(t[2])]
        name = t[1]
        k = self.kind(name)
        if k == "enum":
            return self.enum_json(name, 0)
        if k == "message":
            return {}
        # A union has no default in the spec; guess: the lowest-tag variant
        # holding its default (only used for absent non-optional union fields).
        v = self.variants(name)[0]
        return {v["name"]: self.default(parse_type(v["type"]))}

    def is_default(self, t, v) -> bool:
        """Only for types omitted when default (§5.2)."""
        if t[0] == "scalar":
            n = t[1]
            if n == "f32":
                return f32_bits(v) == 0
            if n == "f64":
                return f64_bits(v) == 0
            if n == "bool":
                return v is False
            if n in ("string", "bytes"):
                return v == ""
            return v == 0
        if t[0] == "named":
            return self.enum_value(t[1], v) == 0
        if t[0] in ("list", "map"):
            return len(v) == 0
        raise AssertionError(t)

    def omittable(self, t) -> bool:
        if t[0] == "scalar":
            return True
        if t[0] in ("list", "map"):
            return True
        if t[0] == "named":
            return self.kind(t[1]) == "enum"
        return False  # array; message/union handled above

    # --- enums ---
    def enum_value(self, name, v) -> int:
        if isinstance(v, str):
            return self.defn(name)[v]
        if not 0 <= v <= U32_MAX:
            raise EncodeError(f"enum value {v}")
        return v

    def enum_json(self, name, n):
        for k, val in self.defn(name).items():
            if val == n:
                return k
        return n

    # -----------------------------------------------------------------------
    # Encoding
    # -----------------------------------------------------------------------
    def int_check(self, n, v):
        lo, hi = INT_RANGES[n]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise EncodeError(f"{v!r} is not a {n}")

    def encode_element(self, t, v) -> bytes:
        """§5.3 element encoding."""
        tag = t[0]
        if tag == "scalar":
            n = t[1]
            if n == "bool":
                assert isinstance(v, bool)
                return b"\x01" if v else b"\x00"
            if n == "u8":
                self.int_check(n, v)
                return bytes([v])
            if n == "i8":
                self.int_check(n, v)
                return bytes([v & 0xFF])
            if n in ("u16", "u32", "u64"):
                self.int_check(n, v)
                return uvarint(v)
            if n in SIGNED:
                self.int_check(n, v)
                return svarint(v)
            if n == "f32":
                return struct.pack("<I", f32_bits(v))
            if n == "f64":
                return struct.pack("<Q", f64_bits(v))
            c = self.content(t, v)
            return uvarint(len(c)) + c
        if tag == "optional":
            if v is None:
                return b"\x00"
            return b"\x01" + self.encode_element(t[1], v)
        if tag in ("list", "map"):
            c = self.content(t, v)
            return uvarint(len(c)) + c
        if tag == "array":
            return self.content(t, v)
        name = t[1]
        k = self.kind(name)
        if k == "enum":
            return uvarint(self.enum_value(name, v))
        if k == "union":
            return self.encode_union(name, v)
        c = self.encode_body(name, v)
        return uvarint(len(c)) + c

    def content(self, t, v) -> bytes:
        """§5.4 content of a length-delimited type."""
        tag = t[0]
        if tag == "scalar":
            n = t[1]
            if n == "f64":
                return struct.pack("<Q", f64_bits(v))
            if n == "string":
                return v.encode("utf-8")
            if n == "bytes":
                return base64.b64decode(v, validate=True)
            raise AssertionError(t)
        if tag == "list":
            return b"".join(self.encode_element(t[1], e) for e in v)
        if tag == "map":
            entries = [(self.map_key_from_json(t[1], k), val) for k, val in v.items()]
            entries.sort(key=lambda e: self.key_sort(t[1], e[0]))
            for a, b in zip(entries, entries[1:]):
                if self.key_sort(t[1], a[0]) == self.key_sort(t[1], b[0]):
                    raise EncodeError("duplicate map key")
            return b"".join(self.encode_element(t[1], k) + self.encode_element(t[2], val)
                            for k, val in entries)
        if tag == "array":
            if len(v) != t[2]:
                raise EncodeError("wrong array length")
            return b"".join(self.encode_element(t[1], e) for e in v)
        name = t[1]
        if self.kind(name) == "message":
            return self.encode_body(name, v)
        if self.kind(name) == "union":
            return self.encode_union(name, v)
        raise AssertionError(t)

    def encode_class_value(self, t, v):
        """§5.1: (class, bytes) for a field or union variant value."""
        cls = self.type_class(t)
        if cls == 1:
            if t[0] == "named":
                return 1, uvarint(self.enum_value(t[1], v))
            n = t[1]
            if n == "bool":
                assert isinstance(v, bool)
                return 1, uvarint(int(v))
            self.int_check(n, v)
            return 1, (svarint(v) if n in SIGNED else uvarint(v))
        if cls == 2:
            return 2, struct.pack("<I", f32_bits(v))
        c = self.content(t, v)
        return 3, uvarint(len(c)) + c

    def check_attrs(self, msg, f, t, v, err):
        ml = f.get("max_len")
        if ml is not None:
            if t[0] == "scalar" and t[1] == "string":
                size = len(v.encode("utf-8"))
            elif t[0] == "scalar" and t[1] == "bytes":
                size = len(base64.b64decode(v))
            else:
                size = len(v)
            if size > ml:
                err("max_len", f"{msg}.{f['name']}: {size} > max_len {ml}")
        rg = f.get("range")
        if rg is not None:
            x = v if not isinstance(v, str) else float(v.replace("Infinity", "inf"))
            if not rg[0] <= x <= rg[1]:
                err("range", f"{msg}.{f['name']}: {v} not in {rg[0]}..={rg[1]}")

    def encode_body(self, name, v: dict) -> bytes:
        """§5.2 message body."""
        known = {f["name"] for f in self.fields(name)}
        unknown = set(v) - known
        if unknown:
            raise EncodeError(f"unknown fields {unknown} in {name}")

        def refuse(_kind, detail):
            raise EncodeError(detail)

        written = []
        for f in self.fields(name):
            t = parse_type(f["type"])
            if t[0] == "optional":
                val = v.get(f["name"])
                if val is None:
                    continue
                t = t[1]
                self.check_attrs(name, f, t, val, refuse)
            else:
                val = v.get(f["name"], self.default(t))
                self.check_attrs(name, f, t, val, refuse)
                if self.omittable(t) and self.is_default(t, val):
                    continue
            cls, data = self.encode_class_value(t, val)
            written.append((f["tag"], cls, data))
        if not written:
            return b"\x00"
        presence = 0
        for tag, cls, _ in written:
            presence |= cls << (2 * (tag - 1))
        return uvarint(presence) + b"".join(d for _, _, d in written)

    def encode_union(self, name, v: dict) -> bytes:
        """§5.5."""
        assert len(v) == 1
        (vname, val), = v.items()
        var = next(x for x in self.variants(name) if x["name"] == vname)
        t = parse_type(var["type"])
        cls, data = self.encode_class_value(t, val)
        return uvarint(var["tag"] * 4 + cls) + data

    # --- map keys ---
    def map_key_from_json(self, kt, k: str):
        if kt[0] == "scalar":
            n = kt[1]
            if n == "bool":
                return {"true": True, "false": False}[k]
            if n in INT_RANGES:
                return int(k)
            if n == "string":
                return k
        if kt[0] == "named" and self.kind(kt[1]) == "enum":
            d = self.defn(kt[1])
            return k if k in d else int(k)
        raise EncodeError(f"unsupported map key type {type_str(kt)}")

    def map_key_json(self, kt, k) -> str:
        if isinstance(k, bool):
            return "true" if k else "false"
        return str(k)

    def key_sort(self, kt, k):
        if kt[0] == "scalar" and kt[1] == "string":
            return k.encode("utf-8")
        if kt[0] == "named":
            return self.enum_value(kt[1], k)
        return int(k)

    # -----------------------------------------------------------------------
    # Decoding (returns the JSON mapping of the value)
    # -----------------------------------------------------------------------
    @staticmethod
    def enter(depth: int, r: Reader) -> int:
        """One level deeper (§7): the top-level payload is level 0; the content of
        a length-delimited value other than string and bytes, the elements of an
        array, a union element and a present optional element each add one."""
        depth += 1
        if depth > MAX_DEPTH:
            raise WireError("depth_exceeded", r.pos, f"depth {depth} > {MAX_DEPTH}")
        return depth

    def int_from_wire(self, n, raw: int, at: int):
        v = unzigzag(raw) if n in SIGNED else raw
        lo, hi = INT_RANGES[n]
        if not lo <= v <= hi:
            raise WireError("integer_out_of_range", at, f"{v} is not a {n}")
        return v

    def decode_element(self, t, r: Reader, depth: int):
        tag = t[0]
        if tag == "scalar":
            n = t[1]
            if n == "bool":
                at = r.pos
                b = r.byte()
                if b > 1:
                    raise WireError("invalid_bool", at, f"{b:02x}")
                return b == 1
            if n == "u8":
                return r.byte()
            if n == "i8":
                b = r.byte()
                return b - 256 if b >= 128 else b
            if n in INT_RANGES:
                at = r.pos
                return self.int_from_wire(n, r.uvarint(), at)
            if n == "f32":
                return f32_from_bits(struct.unpack("<I", r.take(4))[0])
            if n == "f64":
                return f64_from_bits(struct.unpack("<Q", r.take(8))[0])
            sub = r.sub()
            return self.decode_content(t, sub, depth)
        if tag == "optional":
            at = r.pos
            b = r.byte()
            if b == 0:
                return None
            if b != 1:
                # Guess: the presence byte of an optional element is a bool.
                raise WireError("invalid_bool", at, f"optional marker {b:02x}")
            return self.decode_element(t[1], r, self.enter(depth, r))
        if tag in ("list", "map"):
            sub = r.sub()
            return self.decode_content(t, sub, depth)
        if tag == "array":
            depth = self.enter(depth, r)
            out = []
            for _ in range(t[2]):
                out.append(self.decode_element(t[1], r, depth))
            return out
        name = t[1]
        k = self.kind(name)
        if k == "enum":
            at = r.pos
            val = r.uvarint()
            if val > U32_MAX:
                raise WireError("integer_out_of_range", at, f"enum value {val}")
            return self.enum_json(name, val)
        if k == "union":
            return self.decode_union(name, r, self.enter(depth, r))
        return self.decode_content(t, r.sub(), depth)

    def decode_content(self, t, r: Reader, depth: int):
        """Decodes the whole of r as the content of t (§5.4)."""
        tag = t[0]
        if not (tag == "scalar" and t[1] in ("string", "bytes")):
            depth = self.enter(depth, r)
        if tag == "scalar":
            n = t[1]
            if n == "f64":
                if r.remaining() != 8:
                    raise WireError("content_length", r.pos, f"f64 content of {r.remaining()} bytes")
                return f64_from_bits(struct.unpack("<Q", r.take(8))[0])
            raw = r.take(r.remaining())
            if n == "string":
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise WireError("invalid_utf8", r.pos - len(raw) + e.start) from None
            if n == "bytes":
                return base64.b64encode(raw).decode("ascii")
            raise AssertionError(t)
        if tag == "list":
            et = t[1]
            if et[0] == "scalar" and et[1] in FIXED_WIDTH:
                w = FIXED_WIDTH[et[1]]
                if r.remaining() % w:
                    raise WireError("ragged_list", r.pos,
                                    f"{r.remaining()} bytes of list<{et[1]}>")
            out = []
            while r.remaining():
                out.append(self.decode_element(et, r, depth))
            return out
        if tag == "map":
            out = {}
            prev = None
            while r.remaining():
                at = r.pos
                k = self.decode_element(t[1], r, depth)
                s = self.key_sort(t[1], k)
                if prev is not None and s <= prev:
                    raise WireError("map_key_order", at, "keys not strictly ascending")
                prev = s
                out[self.map_key_json(t[1], k)] = self.decode_element(t[2], r, depth)
            return out
        if tag == "array":
            depth = self.enter(depth, r)
            out = []
            for _ in range(t[2]):
                if not r.remaining():
                    raise WireError("content_length", r.pos, "array content too short")
                out.append(self.decode_element(t[1], r, depth))
            r.finish("array content")
            return out
        name = t[1]
        if self.kind(name) == "message":
            v = self.decode_body(name, r, depth)
        else:
            v = self.decode_union(name, r, depth)
        r.finish(name)
        return v

    def decode_class_value(self, t, cls: int, r: Reader, depth: int):
        """Decodes a field / variant value of known type t written with class cls."""
        if cls == 1:
            at = r.pos
            raw = r.uvarint()
            if t[0] == "named":
                if raw > U32_MAX:
                    raise WireError("integer_out_of_range", at, f"enum value {raw}")
                return self.enum_json(t[1], raw)
            n = t[1]
            if n == "bool":
                if raw > 1:
                    raise WireError("invalid_bool", at, f"bool varint {raw}")
                return raw == 1
            return self.int_from_wire(n, raw, at)
        if cls == 2:
            return f32_from_bits(struct.unpack("<I", r.take(4))[0])
        sub = r.sub()
        return self.decode_content(t, sub, depth)

    @staticmethod
    def skip_class(cls: int, r: Reader):
        if cls == 1:
            r.uvarint()
        elif cls == 2:
            r.take(4)
        elif cls == 3:
            r.sub()

    @staticmethod
    def read_presence(r: "Reader") -> int:
        """§5.2: the presence number, base 128, at most 73 bytes, canonical."""
        at = r.pos
        value, shift, count = 0, 0, 0
        while True:
            if r.remaining() == 0:
                raise WireError("unexpected_end", r.pos, "presence field")
            if count == 73:
                raise WireError("bad_presence", at, "presence field longer than 73 bytes")
            b = r.take(1)[0]
            count += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if b == 0 and count > 1:
                    raise WireError("bad_presence", at, "presence field ends with a zero byte")
                break
        if value >> 510:
            raise WireError("bad_presence", at, "class bits for a tag above 255")
        return value

    def decode_body(self, name, r: Reader, depth: int) -> dict:
        presence = self.read_presence(r)
        n = (presence.bit_length() + 1) // 2
        by_tag = {f["tag"]: f for f in self.fields(name)}
        out = {}
        for tag in range(1, n + 1):
            cls = (presence >> (2 * (tag - 1))) & 3
            if cls == 0:
                continue
            f = by_tag.get(tag)
            if f is None:
                self.skip_class(cls, r)  # unknown field (§6)
                continue
            t = parse_type(f["type"])
            if t[0] == "optional":
                t = t[1]
            at = r.pos
            expected = self.type_class(t)
            if cls != expected:
                raise WireError("class_mismatch", at,
                                f"{name}.{f['name']}: class {cls}, expected {expected}")
            v = self.decode_class_value(t, cls, r, depth)

            def err(kind, detail, at=at):
                raise WireError(kind, at, detail)

            self.check_attrs(name, f, t, v, err)
            out[f["name"]] = v
        for f in self.fields(name):
            if f["name"] not in out:
                t = parse_type(f["type"])
                if t[0] != "optional":
                    out[f["name"]] = self.default(t)
        return {f["name"]: out[f["name"]] for f in self.fields(name) if f["name"] in out}

    def decode_union(self, name, r: Reader, depth: int):
        at = r.pos
        key = r.uvarint()
        tag, cls = key >> 2, key & 3
        if cls == 0:
            raise WireError("union_class_absent", at, f"key {key}")
        var = next((x for x in self.variants(name) if x["tag"] == tag), None)
        if var is None:
            start = r.pos
            self.skip_class(cls, r)
            # Unknown variant (§5.5): kept, not an error.
            return {"$unknown": {"tag": tag, "class": cls, "bytes": r.buf[start:r.pos].hex()}}
        t = parse_type(var["type"])
        expected = self.type_class(t)
        if cls != expected:
            raise WireError("class_mismatch", at, f"{name}.{var['name']}: class {cls}, expected {expected}")
        return {var["name"]: self.decode_class_value(t, cls, r, depth)}

    # --- top level ---
    def encode_value(self, type_s: str, v) -> bytes:
        """The `value`-vector encoding: message body / union encoding / element."""
        t = parse_type(type_s)
        if t[0] == "named" and self.kind(t[1]) == "message":
            return self.encode_body(t[1], v)
        return self.encode_element(t, v)

    def decode_value(self, type_s: str, data: bytes):
        t = parse_type(type_s)
        r = Reader(data)
        if t[0] == "named" and self.kind(t[1]) == "message":
            v = self.decode_body(t[1], r, 0)
        elif t[0] == "named" and self.kind(t[1]) == "union":
            v = self.decode_union(t[1], r, 0)
        else:
            v = self.decode_element(t, r, 0)
        r.finish("payload")
        return v

    # -----------------------------------------------------------------------
    # Normal form for comparisons (typed, bit-exact for floats)
    # -----------------------------------------------------------------------
    def norm(self, t, v):
        tag = t[0]
        if tag == "scalar":
            n = t[1]
            if n == "f32":
                b = f32_bits(v)
                return ("f32", "nan" if math.isnan(struct.unpack("<f", struct.pack("<I", b))[0]) else b)
            if n == "f64":
                b = f64_bits(v)
                return ("f64", "nan" if math.isnan(struct.unpack("<d", struct.pack("<Q", b))[0]) else b)
            if n == "bytes":
                return base64.b64decode(v)
            if n == "bool":
                assert isinstance(v, bool)
            return v
        if tag == "optional":
            return None if v is None else self.norm(t[1], v)
        if tag in ("list", "array"):
            return [self.norm(t[1], e) for e in v]
        if tag == "map":
            return {self.norm(t[1], self.map_key_from_json(t[1], k)): self.norm(t[2], val)
                    for k, val in v.items()}
        name = t[1]
        k = self.kind(name)
        if k == "enum":
            return self.enum_value(name, v)
        if k == "union":
            (vn, val), = v.items()
            if vn == "$unknown":
                return ("$unknown", val["tag"], val["class"], val["bytes"])
            var = next(x for x in self.variants(name) if x["name"] == vn)
            return (vn, self.norm(parse_type(var["type"]), val))
        out = {}
        for f in self.fields(name):
            ft = parse_type(f["type"])
            val = v.get(f["name"], self.default(ft))
            out[f["name"]] = self.norm(ft, val)
        return out


# ---------------------------------------------------------------------------
# §8 Fingerprints
# ---------------------------------------------------------------------------

def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & U64_MAX
    return h


def canon(schema: Schema, t, stack: list) -> str:
    tag = t[0]
    if tag == "scalar":
        return t[1]
    if tag in ("optional", "list"):
        return f"{tag}<{canon(schema, t[1], stack)}>"
    if tag == "map":
        return f"map<{canon(schema, t[1], stack)},{canon(schema, t[2], stack)}>"
    if tag == "array":
        return f"array<{canon(schema, t[1], stack)},{t[2]}>"
    name = t[1]
    k = schema.kind(name)
    if k == "enum":
        return "enum{" + ",".join(str(x) for x in sorted(schema.defn(name).values())) + "}"
    if name in stack:
        return f"@{stack.index(name)}"
    d = schema.defn(name)
    stack.append(name)
    s = f"#{d['id']}" if d.get("id") is not None else ""
    if k == "message":
        s += "message{"
        for f in schema.fields(name):
            s += f"{f['tag']}:{canon(schema, parse_type(f['type']), stack)}"
            if f.get("max_len") is not None:
                s += f"[max_len={f['max_len']}]"
            if f.get("range") is not None:
                s += f"[range={f['range'][0]}..={f['range'][1]}]"
            s += ";"
    else:
        s += "union{"
        for v in schema.variants(name):
            s += f"{v['tag']}:{canon(schema, parse_type(v['type']), stack)};"
    s += "}"
    stack.pop()
    return s


def fingerprint(schema: Schema, name: str) -> tuple[str, str]:
    c = canon(schema, ("named", name), [])
    return c, f"{fnv1a64(c.encode('utf-8')):016x}"


# ---------------------------------------------------------------------------
# Vector generation
# ---------------------------------------------------------------------------

def F(name, tag, type_, max_len=None, range_=None):
    return {"name": name, "tag": tag, "type": type_, "max_len": max_len, "range": range_}


def MSG(id_, *fields):
    return {"message": {"id": id_, "fields": list(fields)}}


def UNION(id_, *variants):
    return {"union": {"id": id_, "variants": [{"name": n, "tag": t, "type": ty} for n, t, ty in variants]}}


def ENUM(**values):
    return {"enum": values}


ALL_TYPES = {
    "SlotTelemetry": MSG(3, F("slot", 1, "u8"), F("voltage_mv", 2, "u32"), F("current_ma", 3, "i32"),
                         F("temperature_c", 4, "f32"), F("charging", 5, "bool"), F("energy_wh", 6, "u64")),
    "State": ENUM(empty=0, charging=1, full=2, fault=3),
    "Slot": MSG(None, F("index", 1, "u8")),
    "Opt": MSG(None, F("a", 1, "optional<u32>"), F("b", 2, "optional<string>"),
               F("c", 3, "optional<bool>"), F("d", 4, "optional<f32>")),
    "Defaults": MSG(None, F("u", 1, "u32"), F("flag", 2, "bool"), F("text", 3, "string"),
                    F("items", 4, "list<u8>"), F("ratio", 5, "f32"), F("precise", 6, "f64"),
                    F("tags", 7, "map<string, u32>"), F("blob", 8, "bytes"), F("state", 9, "State"),
                    F("small", 10, "i8")),
    "Inner": MSG(None, F("x", 1, "i16"), F("name", 2, "string")),
    "Outer": MSG(40, F("inner", 1, "Inner"), F("items", 2, "list<Inner>"), F("tail", 3, "u8")),
    "Gaps": MSG(None, F("a", 1, "u8"), F("b", 5, "u8"), F("c", 9, "string"), F("d", 12, "f32")),
    "Tree": MSG(None, F("value", 1, "u32"), F("children", 2, "list<Tree>")),
    "Cmd": UNION(32, ("start", 1, "Slot"), ("level", 2, "u8"), ("temp", 3, "f32"),
                 ("precise", 4, "f64"), ("label", 5, "string"), ("offset", 6, "i32"),
                 ("far", 40, "bool")),
    "Envelope": MSG(33, F("seq", 1, "u32"), F("cmd", 2, "Cmd")),
    "Hw": MSG(None, F("mac", 1, "array<u8, 6>"), F("names", 2, "array<string, 2>")),
    "Limits": MSG(None, F("name", 1, "string", max_len=4), F("level", 2, "u8", range_=[1, 10]),
                  F("temps", 3, "list<i16>", max_len=2), F("delta", 4, "i32", range_=[-5, 5])),
    "Chain": MSG(None, F("next", 1, "optional<Chain>"), F("v", 2, "u8")),
    "Small": MSG(None, F("a", 1, "u8")),
    "SmallBool": MSG(None, F("b", 1, "bool")),
    "SmallI8": MSG(None, F("v", 1, "i8")),
    "SmallF64": MSG(None, F("p", 1, "f64")),
    "SmallState": MSG(None, F("s", 1, "State")),
    "Wrapper": MSG(None, F("slot", 1, "Slot")),
    "Many": MSG(None, *[F(f"f{i}", i, "u8") for i in range(1, 10)]),
    "Reading": MSG(None, F("values", 1, "list<f32>"), F("labels", 2, "map<i32, string>")),
    "Lists": MSG(None, F("l", 1, "list<string>")),
    # fingerprint-only definitions
    "A": MSG(5, F("x", 1, "u8"), F("y", 2, "list<A>")),
    "WithState": MSG(None, F("state", 1, "State"), F("alt", 2, "optional<Sparse>")),
    "Sparse": ENUM(b=2, a=0, c=10),
    "Ping": MSG(None, F("pong", 1, "optional<Pong>")),
    "Pong": MSG(21, F("ping", 1, "optional<Ping>"), F("n", 2, "u16")),
    "Containers": MSG(None, F("m", 1, "map<string, u32>"), F("mac", 2, "array<u8, 6>"),
                      F("o", 3, "optional<bytes>"), F("nested", 4, "list<map<i64, list<f64>>>")),
    "Empty": MSG(7),
    "Node": MSG(None, F("kids", 1, "list<Node>"), F("payload", 2, "Leaf")),
    "Leaf": UNION(None, ("node", 1, "Node"), ("text", 2, "string"), ("tree", 3, "Tree")),
}


def referenced(names):
    """Transitive closure of named types used by `names`."""
    out = {}
    todo = list(names)
    while todo:
        n = todo.pop()
        if n in out or n not in ALL_TYPES:
            continue
        out[n] = ALL_TYPES[n]
        d = ALL_TYPES[n]
        k = next(iter(d))
        tys = []
        if k == "message":
            tys = [f["type"] for f in d[k]["fields"]]
        elif k == "union":
            tys = [v["type"] for v in d[k]["variants"]]
        for ty in tys:
            stack = [parse_type(ty)]
            while stack:
                t = stack.pop()
                if t[0] == "named":
                    todo.append(t[1])
                elif t[0] in ("optional", "list", "array"):
                    stack.append(t[1])
                elif t[0] == "map":
                    stack += [t[1], t[2]]
    return {k: out[k] for k in sorted(out)}


def names_in(type_s):
    stack = [parse_type(type_s)]
    found = []
    while stack:
        t = stack.pop()
        if t[0] == "named":
            found.append(t[1])
        elif t[0] in ("optional", "list", "array"):
            stack.append(t[1])
        elif t[0] == "map":
            stack += [t[1], t[2]]
    return found


VECTORS = []


def add(v):
    VECTORS.append(v)


def H(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def gen_varints():
    for v, d in [(0, "zero"), (1, "one"), (127, "largest 1-byte"), (128, "smallest 2-byte"),
                 (300, "spec example 300"), (16383, "largest 2-byte"), (16384, "smallest 3-byte"),
                 ((1 << 21) - 1, "2^21-1, largest 3-byte"), (1 << 21, "2^21, smallest 4-byte"),
                 (U32_MAX, "2^32-1"), (1 << 32, "2^32"), ((1 << 56) - 1, "2^56-1"),
                 ((1 << 63) - 1, "2^63-1, largest 9-byte"), (1 << 63, "2^63, smallest 10-byte"),
                 (U64_MAX, "2^64-1, largest value")]:
        add({"group": "uvarint", "description": d, "value": v, "hex": uvarint(v).hex()})
    for h, e, d in [("80 00", "non_canonical_varint", "0 as 80 00 (last byte 00)"),
                    ("ff 00", "non_canonical_varint", "127 as ff 00"),
                    ("80 80 00", "non_canonical_varint", "0 in three bytes"),
                    ("ff ff ff ff ff ff ff ff ff 00", "non_canonical_varint", "10 bytes whose last is 00"),
                    ("ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "10th byte with bit 1 set: 2^64"),
                    ("ff ff ff ff ff ff ff ff ff 7f", "varint_overflow", "10th byte 7f"),
                    ("80 80 80 80 80 80 80 80 80 80 01", "varint_overflow", "11-byte varint"),
                    ("", "unexpected_end", "no bytes"),
                    ("80", "unexpected_end", "continuation bit on the last available byte"),
                    ("ff ff ff", "unexpected_end", "three continuation bytes and nothing else")]:
        add({"group": "uvarint", "description": d, "hex": H(h).hex(), "error": e})
    for v, d in [(0, "zero"), (-1, "-1"), (1, "1"), (-2, "-2"), (-64, "-64, largest 1-byte magnitude"),
                 (63, "63"), (64, "64, first 2-byte positive"), (-65, "-65"), (-1500, "-1500 (spec)"),
                 (-(1 << 31), "i32 min"), ((1 << 31) - 1, "i32 max"),
                 (-(1 << 63), "i64 min"), ((1 << 63) - 1, "i64 max")]:
        add({"group": "svarint", "description": d, "value": v, "hex": svarint(v).hex()})
    add({"group": "svarint", "description": "-1 as non-canonical 81 00", "hex": "8100",
         "error": "non_canonical_varint"})
    add({"group": "svarint", "description": "zigzag 2^64 does not fit", "hex": "feffffffffffffffff02",
         "error": "varint_overflow"})


def gen_floats():
    f32s = [(0.0, "0x00000000", "+0.0"), (-0.0, None, "-0.0"), (23.5, None, "23.5 (spec example)"),
            (1.0, None, "1.0"), (-2.5, None, "-2.5"),
            (struct.unpack("<f", H("01000000"))[0], None, "smallest subnormal 1e-45"),
            (struct.unpack("<f", H("ffff7f7f"))[0], None, "f32 max"),
            ("Infinity", None, "+infinity"), ("-Infinity", None, "-infinity"),
            ("NaN", None, "canonical quiet NaN")]
    for v, _, d in f32s:
        bits = f32_bits(v)
        add({"group": "f32", "description": d, "value": v, "bits": f"{bits:08x}",
             "hex": struct.pack("<I", bits).hex()})
    add({"group": "f32", "description": "NaN with payload bits kept (negative, payload 1)", "value": "NaN",
         "bits": "ffc00001", "hex": "0100c0ff"})
    f64s = [(0.0, "+0.0"), (-0.0, "-0.0"), (23.5, "23.5"), (0.1, "0.1 (inexact)"),
            (5e-324, "smallest subnormal"), (sys.float_info.max, "f64 max"),
            ("Infinity", "+infinity"), ("-Infinity", "-infinity"), ("NaN", "canonical quiet NaN")]
    for v, d in f64s:
        bits = f64_bits(v)
        add({"group": "f64", "description": d, "value": v, "bits": f"{bits:016x}",
             "hex": struct.pack("<Q", bits).hex()})
    add({"group": "f64", "description": "NaN with payload bits kept", "value": "NaN",
         "bits": "7ff0000000000001", "hex": "010000000000f07f"})


def gen_headers():
    hs = [
        (header("one-way", 3), "spec: one-way, type 3"),
        (header("one-way", 1), "one-way, type 1 (nibble)"),
        (header("one-way", 15), "spec: one-way, type 15 (largest nibble id)"),
        (header("one-way", 16), "spec: one-way, type 16 (smallest varint id)"),
        (header("one-way", 300), "spec: one-way, type 300"),
        (header("one-way", U32_MAX), "one-way, type 2^32-1 (largest id)"),
        (header("request", 2, 7), "spec: request, type 2, correlation 7"),
        (header("request", 1, 0), "request, correlation 0"),
        (header("request", 15, 127), "request, correlation 127"),
        (header("request", 16, 128), "request, type 16, correlation 128"),
        (header("request", 300, U64_MAX), "request, type 300, correlation 2^64-1"),
        (header("response", 4, 7), "spec: response, type 4, correlation 7"),
        (header("response", U32_MAX, 1), "response, type 2^32-1"),
        (header("error", correlation=300), "spec: error response, correlation 300"),
        (header("error", correlation=0), "error response, correlation 0"),
        (header("stream-item", 5, 1), "spec: stream item, type 5, correlation 1"),
        (header("stream-item", 1000, 2), "stream item, varint type"),
        (header("stream-end", correlation=1), "spec: stream end, correlation 1"),
        (header("cancel", correlation=9), "spec: cancel, correlation 9"),
        (header("cancel", correlation=U64_MAX), "cancel, correlation 2^64-1"),
        (header("ack"), "spec: ack"),
        (header("hello"), "hello"),
        (header("welcome"), "welcome"),
        (header("ping"), "spec: ping"),
        (header("pong"), "pong"),
        (header("close"), "close"),
        (header("one-way", 3, seq=42), "spec: one-way, type 3, SEQ, seq 42"),
        (header("request", 20, 1, seq=5, more=True), "spec: request, type 20, correlation 1, SEQ + MORE, seq 5"),
        (header("one-way", 300, more=True), "one-way, type 300, MORE only"),
        (header("response", 2, 128, seq=U64_MAX), "response with seq 2^64-1"),
        (header("stream-item", 16, 0, seq=0), "stream item, seq 0"),
        (header("stream-end", correlation=3, more=True, seq=128), "stream end with SEQ + MORE"),
        (header("ack", seq=7), "ack with SEQ (sequence follows the lead byte)"),
        (header("ping", more=True), "ping with MORE"),
    ]
    for h, d in hs:
        add({"group": "header", "description": d, "value": h, "hex": encode_header(h).hex()})
    bad = [
        ("83 04 2a", "reserved_flags", "extension byte with bit 2 set"),
        ("83 80", "reserved_flags", "extension byte with bit 7 (future chaining) set"),
        ("83 fd 2a", "reserved_flags", "extension byte fd"),
        ("83 00", "non_canonical_header", "extension byte 00"),
        ("00 0f", "non_canonical_header", "type id 15 written as a varint"),
        ("00 01", "non_canonical_header", "type id 1 written as a varint"),
        ("00 00", "invalid_type_id", "varint type id 0"),
        ("00 80 80 80 80 10", "invalid_type_id", "varint type id 2^32"),
        ("76", "unknown_link_opcode", "link opcode 6"),
        ("7f", "unknown_link_opcode", "link opcode 15"),
        ("61 09", "non_canonical_header", "cancel with non-zero nibble"),
        ("31 01", "non_canonical_header", "error response with non-zero nibble"),
        ("5f 01", "non_canonical_header", "stream end with non-zero nibble"),
        ("00", "unexpected_end", "nibble 0 and no type id varint"),
        ("12", "unexpected_end", "request without correlation id"),
        ("80", "unexpected_end", "X set but no extension byte"),
        ("83 01", "unexpected_end", "SEQ set but no sequence number"),
        ("12 80 00", "non_canonical_varint", "correlation id 0 as 80 00"),
        ("12 ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "correlation id above 2^64-1"),
    ]
    for h, e, d in bad:
        add({"group": "header", "description": d, "hex": H(h).hex(), "error": e})


def gen_call_headers():
    """§2.3 CALL and §2.7 call headers; the credit link frame's header (§2.2)."""
    hs = [
        (header("request", 4, 3, call_=call(1, 2, 5000)),
         "spec §2.7: call of service 1, method 2, deadline 5000 ms, request type 4, correlation 3"),
        (header("request", 1, 1, call_=call(0, 1, 0)),
         "call of the reflection service (index 0), method 1 describe, type 1, no deadline"),
        (header("request", 2, 2, call_=call(1, 1, 0)),
         "call with an even correlation id (made by the accepting side)"),
        (header("request", 15, 127, call_=call(127, 127, 127)),
         "call: service, method and deadline 127 (largest 1-byte varints)"),
        (header("request", 3, 5, call_=call(128, 128, 128)),
         "call: service, method and deadline 128 (smallest 2-byte varints)"),
        (header("request", 7, 9, call_=call(2, U16_MAX, 30_000)),
         "call of method 65535 (largest method id)"),
        (header("request", U32_MAX, U64_MAX, call_=call(U32_MAX, U16_MAX, U64_MAX)),
         "call with every field at its maximum: type 2^32-1, correlation 2^64-1, service 2^32-1, method 65535, deadline 2^64-1"),
        (header("request", 16, 128, call_=call(3, 40, 16384)),
         "call with type id 16 (varint type id), correlation 128"),
        (header("request", 300, 11, call_=call(1, 3, 1000)),
         "call with type id 300"),
        (header("request", 2, 5, seq=9, call_=call(3, 300, 100)),
         "call with SEQ: the sequence number comes before the call header"),
        (header("request", 20, 7, more=True, call_=call(1, 1, 0)),
         "call with MORE: the first fragment of a call"),
        (header("request", 20, 1, seq=5, more=True, call_=call(4, 6, 250)),
         "call with SEQ + MORE (extension byte 07)"),
        (header("request", 1000, U64_MAX - 1, seq=0, call_=call(0, 1, 1)),
         "call with varint type id, 10-byte correlation id, seq 0, reflection describe, deadline 1 ms"),
        (header("credit"), "credit (link opcode 7, lead byte 77)"),
        (header("credit", seq=3), "credit with SEQ"),
        (header("credit", more=True), "credit with MORE"),
    ]
    for h, d in hs:
        add({"group": "header", "description": d, "value": h, "hex": encode_header(h).hex()})
    bad = [
        # the call header's ranges (§2.7)
        ("94 04 03 01 00 00", "integer_out_of_range", "call of method id 0"),
        ("94 04 03 01 80 80 04 00", "integer_out_of_range", "call of method id 65536"),
        ("94 04 03 01 ff ff ff ff 0f 00", "integer_out_of_range", "call of method id 2^32-1"),
        ("94 04 03 80 80 80 80 10 01 00", "integer_out_of_range", "call of service index 2^32"),
        ("94 04 03 ff ff ff ff ff ff ff ff ff 01 01 00", "integer_out_of_range", "call of service index 2^64-1"),
        ("95 05 03 07 80 80 80 80 10 00 00", "integer_out_of_range",
         "call with SEQ: service index 2^32 after the sequence number"),
        # varints of the call header
        ("94 04 03 80 00 01 00", "non_canonical_varint", "call: service index 0 as 80 00"),
        ("94 04 03 01 82 00 00", "non_canonical_varint", "call: method id 2 as 82 00"),
        ("94 04 03 01 02 80 00", "non_canonical_varint", "call: deadline 0 as 80 00"),
        ("94 04 03 01 02 ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "call: deadline above 2^64-1"),
        ("94 04 03 ff ff ff ff ff ff ff ff ff 02 01 00", "varint_overflow", "call: service index above 2^64-1"),
        # truncated call headers
        ("94 04 03", "unexpected_end", "CALL set but no call header"),
        ("94 04 03 01", "unexpected_end", "call header without method and deadline"),
        ("94 04 03 01 02", "unexpected_end", "call header without deadline"),
        ("94 04 03 01 02 88", "unexpected_end", "call header cut inside the deadline varint"),
        ("95 05 03 05", "unexpected_end", "CALL + SEQ: sequence number, then no call header"),
        ("94 04", "unexpected_end", "CALL set, request without correlation id"),
        # CALL on another kind than a request is a reserved flag (§2.3)
        ("84 04 01 02 00", "reserved_flags", "CALL on a one-way frame"),
        ("a4 04 03 01 02 00", "reserved_flags", "CALL on a response frame"),
        ("b0 04 03 01 02 00", "reserved_flags", "CALL on an error response frame"),
        ("c4 04 03 01 02 00", "reserved_flags", "CALL on a stream item frame"),
        ("d0 04 03 01 02 00", "reserved_flags", "CALL on a stream end frame"),
        ("e0 04 03 01 02 00", "reserved_flags", "CALL on a cancel frame"),
        ("f0 04 01 02 00", "reserved_flags", "CALL on an ack (link) frame"),
        ("f3 04", "reserved_flags", "CALL on a ping (link) frame"),
        ("f7 04 03 01", "reserved_flags", "CALL on a credit (link) frame"),
        ("f7 07 05", "reserved_flags", "SEQ + MORE + CALL on a credit frame"),
        # other reserved bits next to CALL
        ("94 0c 03 01 02 00", "reserved_flags", "request: CALL with bit 3 set"),
        ("94 84 03 01 02 00", "reserved_flags", "request: CALL with bit 7 (future chaining) set"),
        # opcode 6 stays unknown, next to the new opcode 7
        ("f6 01 05", "unknown_link_opcode", "link opcode 6 with SEQ"),
    ]
    for h, e, d in bad:
        add({"group": "header", "description": d, "hex": H(h).hex(), "error": e})


def gen_ack():
    """§2.2 the payload of an ack link frame (cumulative acknowledgement)."""
    for n, d in [(0, "nothing received yet"), (1, "sequence number 1"),
                 (127, "largest one-byte varint"), (300, "2-byte varint"),
                 (U64_MAX, "2^64-1")]:
        add({"group": "ack", "description": d, "value": {"received": n},
             "hex": encode_ack(n).hex()})
    for h, e, d in [("", "unexpected_end", "empty payload"),
                    ("ac", "unexpected_end", "cut inside its varint"),
                    ("05 00", "content_length", "a byte after the number"),
                    ("80 00", "non_canonical_varint", "0 as 80 00"),
                    ("ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "above 2^64-1")]:
        add({"group": "ack", "description": d, "hex": H(h).hex(), "error": e})


def gen_credit():
    """§2.7 flow control: the payload of a credit link frame."""
    for c, n, d in [(1, 1, "correlation 1, one byte"), (2, 8, "even correlation id, 8 bytes"),
                    (0, 1, "correlation 0"), (300, 128, "2-byte correlation and bytes"),
                    (U64_MAX, U64_MAX, "correlation and bytes 2^64-1"),
                    (1, 131072, "half of a 256 KiB window (3-byte varint)")]:
        add({"group": "credit", "description": d, "value": {"correlation": c, "bytes": n},
             "hex": encode_credit(c, n).hex()})
    for h, e, d in [("01 00", "integer_out_of_range", "credit of 0 bytes"),
                    ("", "unexpected_end", "empty payload"),
                    ("01", "unexpected_end", "correlation without bytes"),
                    ("ac", "unexpected_end", "correlation cut inside its varint"),
                    ("01 80", "unexpected_end", "bytes cut inside its varint"),
                    ("01 02 00", "content_length", "a byte after the bytes"),
                    ("80 00 01", "non_canonical_varint", "correlation 0 as 80 00"),
                    ("01 81 00", "non_canonical_varint", "bytes 1 as 81 00"),
                    ("01 ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "bytes above 2^64-1")]:
        add({"group": "credit", "description": d, "hex": H(h).hex(), "error": e})


def gen_batch():
    """§2.3 BATCH and §2.7 batches: headers, payloads and what items cost."""
    hs = [
        (header("stream-item", 24, 1, batch=True), "spec §2.7: batch of type 24, correlation 1"),
        (header("stream-item", 5, 2, batch=True), "batch, type id in the nibble"),
        (header("stream-item", 5, 2, seq=4, batch=True), "batch with SEQ (extension byte 09)"),
        (header("stream-item", 300, 3, more=True, batch=True),
         "batch with MORE: the first fragment of a batch"),
        (header("stream-item", U32_MAX, U64_MAX, seq=U64_MAX, more=True, batch=True),
         "batch with every field at its maximum, SEQ + MORE (extension byte 0b)"),
    ]
    for h, d in hs:
        add({"group": "header", "description": d, "value": h, "hex": encode_header(h).hex()})
    bad = [
        ("83 08", "reserved_flags", "BATCH on a one-way frame"),
        ("90 08 14 01", "reserved_flags", "BATCH on a request frame"),
        ("9c 0c 01 01 02 00", "reserved_flags", "BATCH + CALL on a request frame"),
        ("a4 08 01", "reserved_flags", "BATCH on a response frame"),
        ("b0 08 01", "reserved_flags", "BATCH on an error response frame"),
        ("d0 08 01", "reserved_flags", "BATCH on a stream end frame"),
        ("e0 08 01", "reserved_flags", "BATCH on a cancel frame"),
        ("f0 08 05", "reserved_flags", "BATCH on an ack (link) frame"),
        ("f7 08", "reserved_flags", "BATCH on a credit (link) frame"),
        ("c5 0c 01 01 02 00", "reserved_flags", "BATCH + CALL on a stream item frame"),
        ("c5 18 01", "reserved_flags", "stream item: BATCH with bit 4 set"),
        ("c5 88 01", "reserved_flags", "stream item: BATCH with bit 7 (future chaining) set"),
        ("c5 08", "unexpected_end", "BATCH set, stream item without correlation id"),
    ]
    for h, e, d in bad:
        add({"group": "header", "description": d, "hex": H(h).hex(), "error": e})
    for items, d in [
        ([H("aabb"), b""], "spec §2.7: two items, aa bb and an empty one (cost 10 + 8)"),
        ([b""], "one empty item"),
        ([H("01 01 2a")], "one item"),
        ([H("01 01 2a"), H("01 02 2a"), H("01 03 2a")], "three items"),
        ([bytes(range(1, 128))], "an item of 127 bytes: 1-byte length"),
        ([bytes(range(1, 129)), H("07")], "an item of 128 bytes (2-byte length), then one of 1"),
        ([b""] * 5, "five empty items (cost 8 each)"),
        ([bytes(300)], "an item of 300 bytes"),
    ]:
        add({"group": "batch", "description": d,
             "value": {"items": [i.hex() for i in items], "cost": sum(item_cost(i) for i in items)},
             "hex": encode_batch(items).hex()})
    for h, e, d in [
        ("", "unexpected_end", "a batch without items"),
        ("03 aa bb", "length_out_of_bounds", "an item longer than the rest of the payload"),
        ("01 aa 02 bb", "length_out_of_bounds", "a second item cut short"),
        ("01 aa 80", "unexpected_end", "a length prefix cut inside its varint"),
        ("80 00", "non_canonical_varint", "length 0 written as 80 00"),
        ("81 00 aa", "non_canonical_varint", "length 1 written as 81 00"),
        ("ff ff ff ff ff ff ff ff ff 02", "varint_overflow", "a length above 2^64-1"),
        ("ff ff ff ff 0f", "length_out_of_bounds", "a length of 2^32-1"),
    ]:
        add({"group": "batch", "description": d, "hex": H(h).hex(), "error": e})


def gen_error_bodies():
    for code, msg, d in [(0, "", "unspecified, empty message"), (1, "unknown message type", "code 1"),
                         (10, "fingerprint mismatch", "code 10"),
                         (1000, "slot 3 jammed", "application code 1000"),
                         (70000, "température élevée", "multi-byte UTF-8 message, 3-byte code")]:
        add({"group": "error_body", "description": d, "value": {"code": code, "message": msg},
             "hex": encode_error_body(code, msg).hex()})
    for h, e, d in [("02 02 c3 28", "invalid_utf8", "message is invalid UTF-8"),
                    ("02 05 61 62", "length_out_of_bounds", "message length past the end"),
                    ("00 ff ff ff ff 0f", "length_out_of_bounds", "message length u32::MAX"),
                    ("", "unexpected_end", "empty body"),
                    ("05", "unexpected_end", "code without message length")]:
        add({"group": "error_body", "description": d, "hex": H(h).hex(), "error": e})


def gen_stream():
    telem = Schema(ALL_TYPES).encode_body("SlotTelemetry", {
        "slot": 2, "voltage_mv": 48120, "current_ma": -1500, "temperature_c": 23.5,
        "charging": True, "energy_wh": 0})
    cases = [
        (header("one-way", 3), H("010203"), "spec: one-way type 3, payload 01 02 03"),
        (header("one-way", 1), b"", "spec: empty one-way message of type 1"),
        (header("one-way", 3), telem, "spec §9: SlotTelemetry worked example (16 bytes)"),
        (header("one-way", 2), bytes(range(1, 128)), "127-byte payload: L = 127, 1-byte length"),
        (header("one-way", 2), bytes(range(1, 129)), "128-byte payload: L = 128, 2-byte length"),
        (header("request", 2, 7), H("00"), "request with an empty message body"),
        (header("request", 300, 128, seq=9), H("0101 05"), "request, varint type, 2-byte correlation, seq"),
        (header("response", 4, 7), H("01 01 2a"), "response"),
        (header("error", correlation=7), encode_error_body(4, "deadline exceeded"), "error response"),
        (header("stream-end", correlation=1), b"", "stream end, empty"),
        (header("ack"), uvarint(300), "ack n = 300"),
        (header("ping"), H("deadbeef"), "ping with opaque payload"),
        (header("close"), encode_error_body(9, "bye"), "close with a reason"),
        (header("one-way", 5, more=True), bytes(range(1, 11)), "first fragment (MORE)"),
    ]
    cases += [
        (header("request", 4, 3, call_=call(1, 2, 5000)), H("01 01 2a"),
         "call (spec §2.7 header) with a message body"),
        (header("request", 6, 5, call_=call(2, 3, 0)), b"",
         "call of a client-streaming method: empty payload"),
        (header("request", 1, 7, call_=call(0, 1, 0)), b"", "reflection describe call"),
        (header("credit"), encode_credit(3, 16), "credit of 16 bytes for correlation 3"),
        (header("stream-item", 24, 1, batch=True), encode_batch([H("aabb"), b""]),
         "spec §2.7: a batch of two items (aa bb, and an empty one), type 24, correlation 1"),
        (header("stream-item", 5, 2, batch=True), encode_batch([H("01 01 2a")] * 3),
         "a batch of three equal items, type 5 in the nibble"),
    ]
    for h, p, d in cases:
        add({"group": "stream_frame", "description": d, "value": {"header": h, "payload": p.hex()},
             "hex": encode_stream_frame(h, p).hex()})
    add({"group": "stream_frame", "description": "L + 1 = 1 MiB + 1 exceeds the 1 MiB maximum",
         "max_frame": MAX_STREAM_FRAME, "hex": uvarint(1 << 20).hex(), "error": "frame_too_large"})
    add({"group": "stream_frame", "description": "length above the maximum, rejected before the frame bytes arrive",
         "max_frame": MAX_STREAM_FRAME, "hex": "ffffffff0f03", "error": "frame_too_large"})
    add({"group": "stream_frame", "description": "header does not fit in the frame (request, L = 0)",
         "max_frame": MAX_STREAM_FRAME, "hex": "0012", "error": "unexpected_end"})
    add({"group": "stream_frame", "description": "non-canonical length prefix",
         "max_frame": MAX_STREAM_FRAME, "hex": "800003", "error": "non_canonical_varint"})
    add({"group": "stream_frame", "description": "frame shorter than L + 1",
         "max_frame": MAX_STREAM_FRAME, "hex": "05030102", "error": "unexpected_end"})
    add({"group": "stream_frame", "description": "call header does not fit in the frame (L = 4: deadline missing)",
         "max_frame": MAX_STREAM_FRAME, "hex": "049404030102", "error": "unexpected_end"})


def gen_serial():
    telem = Schema(ALL_TYPES).encode_body("SlotTelemetry", {
        "slot": 2, "voltage_mv": 48120, "current_ma": -1500, "temperature_c": 23.5,
        "charging": True, "energy_wh": 0})
    # a payload whose CRC contains a 00 byte
    zero_crc = None
    for i in range(1, 100000):
        p = uvarint(i)
        raw = encode_header(header("one-way", 3)) + p
        crc = struct.pack("<I", crc32c(raw))
        if 0 in crc and 0 not in raw:
            zero_crc = p
            break
    assert zero_crc is not None
    nonzero300 = bytes((i % 255) + 1 for i in range(300))
    cases = [
        (None, header("one-way", 3), H("010203"), "spec §4: one-way type 3, payload 01 02 03, point-to-point"),
        (0x11, header("one-way", 3), H("010203"), "same frame with address 0x11"),
        (0xFF, header("ping"), b"", "broadcast address ff, ping"),
        (None, header("one-way", 3), telem, "§9 worked example over serial (21 bytes)"),
        (None, header("one-way", 3), zero_crc, "CRC-32C contains a 00 byte"),
        (None, header("one-way", 2), nonzero300, "300 non-zero payload bytes: a full ff COBS block"),
        (None, header("request", 2, 0), H("00 00 00"), "payload of zeros, correlation 0"),
        (0x00, header("one-way", 1), b"", "address 00 (encoded away by COBS)"),
        (None, header("ack"), uvarint(1), "ack 1"),
        (0x07, header("response", 300, 5, seq=1), H("0102"), "address, varint type, seq"),
        (None, header("request", 4, 3, call_=call(1, 2, 5000)), H("0101 2a"), "call frame (spec §2.7 header)"),
        (0x11, header("credit"), encode_credit(1, 4), "credit frame, addressed"),
        (None, header("stream-item", 5, 1, batch=True), encode_batch([H("0101 2a"), H("0101 2b")]),
         "a batch of two stream items"),
    ]
    for a, h, p, d in cases:
        add({"group": "serial_frame", "description": d,
             "value": {"address": a, "header": h, "payload": p.hex()},
             "hex": encode_serial_frame(a, h, p).hex()})
    good = encode_serial_frame(None, header("one-way", 3), H("010203"))
    flipped = bytearray(good)
    flipped[2] ^= 0x04
    add({"group": "serial_frame", "description": "spec §4 example with one payload bit flipped",
         "addressed": False, "hex": bytes(flipped).hex(), "error": "corrupt_frame"})
    flipped = bytearray(good)
    flipped[-2] ^= 0x80
    add({"group": "serial_frame", "description": "a CRC bit flipped",
         "addressed": False, "hex": bytes(flipped).hex(), "error": "corrupt_frame"})
    add({"group": "serial_frame", "description": "COBS block of 3 bytes: shorter than lead byte + CRC",
         "addressed": False, "hex": "04010203" + "00", "error": "corrupt_frame"})
    add({"group": "serial_frame", "description": "COBS code byte points past the end of the block",
         "addressed": False, "hex": "0903010203aabbccdd00", "error": "corrupt_frame"})


def gen_cobs():
    cases = [
        ("11 22 00 33", "spec: 11 22 00 33"), ("00", "spec: a single 00"), ("", "spec: empty input"),
        ("00 00", "two zeros"), ("11 00", "trailing zero"), ("01", "single non-zero byte"),
        ("11 22 33 44", "no zeros"),
    ]
    for h, d in cases:
        add({"group": "cobs", "description": d, "value": H(h).hex(), "hex": cobs_encode(H(h)).hex()})
    run = bytes((i % 255) + 1 for i in range(254))
    add({"group": "cobs", "description": "253 non-zero bytes: one block, code fe",
         "value": run[:253].hex(), "hex": cobs_encode(run[:253]).hex()})
    add({"group": "cobs", "description": "254 non-zero bytes: an ff block, then the final 01 block",
         "value": run.hex(), "hex": cobs_encode(run).hex()})
    add({"group": "cobs", "description": "254 non-zero bytes then 00",
         "value": (run + b"\x00").hex(), "hex": cobs_encode(run + b"\x00").hex()})
    add({"group": "cobs", "description": "255 non-zero bytes: ff block then 02 block",
         "value": (run + b"\x05").hex(), "hex": cobs_encode(run + b"\x05").hex()})
    add({"group": "cobs", "description": "code byte points past the end", "hex": "0511", "error": "corrupt_frame"})
    add({"group": "cobs", "description": "00 inside the encoding", "hex": "031100", "error": "corrupt_frame"})


S = Schema(ALL_TYPES)


def val(type_s, v, d):
    types = referenced(names_in(type_s))
    sch = Schema(types)
    add({"group": "value", "description": d, "types": types, "type": type_s, "value": v,
         "hex": sch.encode_value(type_s, v).hex()})


def old_body(h: str) -> str:
    """Rewrites a body written as uvarint(N) + bitmap (hand-written vectors)
    into the presence form of §5.2, keeping the value bytes."""
    b = H(h)
    n, i = 0, 0
    shift = 0
    while True:
        n |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            break
    nb = (n + 3) // 4
    presence = int.from_bytes(b[i:i + nb], "little")
    return (uvarint(presence) + b[i + nb:]).hex()


def bad(type_s, h, err, d):
    types = referenced(names_in(type_s))
    add({"group": "value", "description": d, "types": types, "type": type_s,
         "hex": H(h).hex(), "error": err})


def gen_values():
    # scalars in element encoding
    for t, v, d in [
        ("u8", 0, "u8 0"), ("u8", 200, "u8 200 is one byte c8, not a varint"), ("u8", 255, "u8 255"),
        ("bool", False, "bool false"), ("bool", True, "bool true"),
        ("i8", -1, "i8 -1 is ff"), ("i8", -128, "i8 min"), ("i8", 127, "i8 max"),
        ("u16", 300, "u16 varint"), ("u16", 65535, "u16 max"),
        ("u32", 48120, "u32 varint"), ("u32", U32_MAX, "u32 max"),
        ("u64", 0, "u64 0"), ("u64", U64_MAX, "u64 max"),
        ("i16", -1, "i16 -1 zigzag"), ("i16", -32768, "i16 min"), ("i16", 32767, "i16 max"),
        ("i32", -1500, "i32 -1500"), ("i32", -(1 << 31), "i32 min"), ("i32", (1 << 31) - 1, "i32 max"),
        ("i64", -(1 << 63), "i64 min"), ("i64", (1 << 63) - 1, "i64 max"),
        ("f32", 23.5, "f32 23.5"), ("f32", -0.0, "f32 -0.0"), ("f32", "NaN", "f32 NaN"),
        ("f64", 1.5, "f64 1.5"), ("f64", "-Infinity", "f64 -infinity"),
        ("string", "", "empty string"), ("string", "cab/17", "ASCII string"),
        ("string", "héllo", "2-byte UTF-8"), ("string", "日本", "3-byte UTF-8"),
        ("string", "🔋", "4-byte UTF-8"), ("bytes", b64(b""), "empty bytes"),
        ("bytes", b64(H("00 ff 10")), "bytes 00 ff 10"),
        ("optional<u32>", None, "optional absent"), ("optional<u32>", 0, "optional holding 0"),
        ("optional<u32>", 300, "optional holding 300"), ("optional<string>", "hi", "optional string"),
        ("list<u8>", [], "empty list"), ("list<u8>", [1, 2, 200], "list<u8> is raw bytes"),
        ("list<u32>", [0, 128, U32_MAX], "list<u32> of varints"),
        ("list<string>", ["a", "", "été"], "list<string>"),
        ("list<f32>", [1.0, -0.0, 23.5], "list<f32> is 4-byte little-endian floats"),
        ("list<bool>", [True, False], "list<bool>"), ("list<i8>", [-1, 1], "list<i8>"),
        ("list<list<u16>>", [[1, 300], [], [65535]], "list of lists"),
        ("map<string, u32>", {"a": 1, "b": 2, "ab": 300}, "map<string,u32>, keys sorted by bytes"),
        ("map<string, u32>", {"é": 1, "z": 2, "Z": 3}, "map keys sorted by UTF-8 bytes (Z < z < é)"),
        ("map<i32, string>", {"-2": "m2", "-1": "m1", "1": "p1", "10": "p10"},
         "map<i32,string>: negative keys sort first (by value, not by zigzag bytes)"),
        ("map<bool, u8>", {"false": 0, "true": 255}, "map<bool,u8>: false first"),
        ("map<u64, list<u8>>", {"5": [1], "128": []}, "map<u64,list<u8>>"),
        ("map<string, u32>", {}, "empty map"),
        ("array<u8, 6>", [1, 2, 3, 4, 5, 6], "array<u8,6>: 6 bytes, no length"),
        ("array<string, 2>", ["ab", ""], "array<string,2>"),
        ("array<i32, 3>", [-1, 0, 1], "array<i32,3>"),
        ("list<optional<u8>>", [None, 0, 7], "optional elements"),
        ("State", "charging", "enum known value"), ("State", "empty", "enum value 0"),
        ("State", 7, "enum unknown value kept as a number"), ("State", 300, "enum unknown 2-byte value"),
        ("list<State>", ["full", 9], "list of enums"),
    ]:
        val(t, v, d)

    telem = {"slot": 2, "voltage_mv": 48120, "current_ma": -1500, "temperature_c": 23.5,
             "charging": True, "energy_wh": 0}
    val("SlotTelemetry", telem, "§9 worked example body (14 bytes)")
    val("SlotTelemetry", {}, "all defaults: body 00")
    val("SlotTelemetry", {"energy_wh": 1}, "only tag 6 present")
    val("Opt", {}, "all optional fields absent")
    val("Opt", {"a": 0, "b": "", "c": False, "d": 0.0}, "optional fields holding zero values are written")
    val("Opt", {"c": True}, "only tag 3")
    val("Opt", {"a": 5, "d": -1.0}, "tags 1 and 4")
    val("Defaults", {"u": 0, "flag": False, "text": "", "items": [], "ratio": 0.0, "precise": 0.0,
                     "tags": {}, "blob": "", "state": "empty", "small": 0},
        "every default given explicitly is omitted: body 00")
    val("Defaults", {"ratio": -0.0}, "f32 -0.0 is not the default: written")
    val("Defaults", {"precise": -0.0}, "f64 -0.0 is written (class 3, 8 bytes)")
    val("Defaults", {"ratio": "NaN"}, "NaN is written")
    val("Defaults", {"u": 1, "flag": True, "text": "x", "items": [0], "ratio": 1.0, "precise": 2.0,
                     "tags": {"k": 0}, "blob": b64(b"\x00"), "state": "fault", "small": -3},
        "every field non-default")
    val("Defaults", {"state": 12}, "unknown enum value in a field")
    val("Outer", {"inner": {"x": -2, "name": "a"}, "items": [{"x": 1, "name": ""}, {}], "tail": 9},
        "nested messages")
    val("Outer", {}, "a message field is always written, even when default")
    val("Wrapper", {"slot": {"index": 4}}, "nested message field")
    val("Gaps", {"a": 1, "b": 2, "c": "z", "d": 1.0}, "tag gaps 1, 5, 9, 12")
    val("Gaps", {"d": 0.5}, "only tag 12: a 4-byte presence field")
    val("Many", {"f9": 1}, "tag 9 only: a 3-byte presence field")
    val("Tree", {"value": 1, "children": [{"value": 2}, {"value": 3, "children": [{"value": 4}]}]},
        "recursive message (list of itself)")
    val("Chain", {"next": {"next": {"v": 3}, "v": 2}, "v": 1}, "recursive optional chain")
    val("Hw", {"mac": [0, 17, 34, 51, 68, 85], "names": ["a", "b"]}, "array fields")
    val("Hw", {}, "array fields are always written, default elements")
    val("Reading", {"values": [1.5, -2.0], "labels": {"-5": "low", "5": "high"}}, "list<f32> and map<i32,string> fields")
    val("Lists", {"l": ["x", "yy"]}, "list<string> field")
    val("Cmd", {"start": {"index": 2}}, "union, message variant")
    val("Cmd", {"level": 7}, "union, u8 variant as a class-1 varint")
    val("Cmd", {"level": 200}, "union, u8 variant 200 as a 2-byte varint")
    val("Cmd", {"temp": 23.5}, "union, f32 variant (class 2)")
    val("Cmd", {"precise": 23.5}, "union, f64 variant (class 3, 8 bytes)")
    val("Cmd", {"label": ""}, "union variant holding the default is still written")
    val("Cmd", {"offset": -1500}, "union, i32 variant zigzag")
    val("Cmd", {"far": True}, "union variant tag 40: 2-byte key")
    val("Envelope", {"seq": 1, "cmd": {"level": 3}}, "message with a union field")
    val("Envelope", {"cmd": {"start": {}}}, "union field holding an empty message")
    val("list<Cmd>", [{"level": 1}, {"temp": 1.0}], "list of unions (union encoding, no length)")
    val("Limits", {"name": "abcd", "level": 10, "temps": [-1, 1], "delta": -5}, "max_len and range at their bounds")
    val("SmallI8", {"v": -1}, "i8 field is a zigzag varint (class 1)")
    val("Small", {"a": 200}, "u8 field 200 is a 2-byte varint (class 1)")

    # ---- invalid ----
    bad("bool", "02", "invalid_bool", "bool element 02")
    bad("list<bool>", "02 01 02", "invalid_bool", "bool element 02 in a list")
    bad("map<bool, u8>", "04 00 01 03 02", "invalid_bool", "bool map key 03")
    bad("SmallBool", old_body("01 01 02"), "invalid_bool", "bool field (class 1) with value 2")
    bad("u8", "", "unexpected_end", "u8 element with no byte")
    bad("u16", "80 80 04", "integer_out_of_range", "u16 element 65536")
    bad("i32", "80 80 80 80 10", "integer_out_of_range", "i32 element with zigzag 2^32 (i32 max + 1)")
    bad("Small", old_body("01 01 80 02"), "integer_out_of_range", "u8 field (class 1 varint) holding 256")
    bad("SmallI8", old_body("01 01 80 02"), "integer_out_of_range", "i8 field with zigzag 256 = 128")
    bad("State", "80 80 80 80 10", "integer_out_of_range", "enum value 2^32")
    bad("string", "02 c3 28", "invalid_utf8", "invalid UTF-8 (bad continuation)")
    bad("string", "02 c0 80", "invalid_utf8", "overlong UTF-8 encoding of NUL")
    bad("string", "03 ed a0 80", "invalid_utf8", "UTF-8 encoded surrogate")
    bad("list<string>", "03 02 c3 28", "invalid_utf8", "invalid UTF-8 inside list<string>")
    bad("string", "05 61", "length_out_of_bounds", "string length past the end")
    bad("list<u8>", "ff ff ff ff 0f", "length_out_of_bounds", "list length u32::MAX")
    bad("list<string>", "02 05 61", "length_out_of_bounds", "element length past the end of the list content")
    bad("Small", old_body("01 01"), "unexpected_end", "field value missing")
    bad("Small", "85", "unexpected_end", "presence field cut after a continuation byte")
    bad("Small", "81 00 05", "bad_presence", "presence field ending with a zero byte (non-canonical)")
    bad("Small", "80 00", "bad_presence", "presence 0 written in two bytes")
    bad("Small", "80" * 72 + "40", "bad_presence", "class bits for tag 256 (bit 510)")
    bad("Many", "ff" * 73 + "01", "bad_presence", "presence field of 74 bytes")
    bad("Small", old_body("01 02 00 00 00 00"), "class_mismatch", "u8 field written with class 2")
    bad("Small", old_body("01 03 01 05"), "class_mismatch", "u8 field written with class 3")
    bad("Wrapper", old_body("01 01 05"), "class_mismatch", "message field written with class 1")
    bad("Cmd", "04", "union_class_absent", "union key tag 1 class 0")
    bad("Envelope", old_body("02 0c 01 04"), "union_class_absent", "union field whose key has class 0")
    bad("Cmd", "05 01", "class_mismatch", "union: message variant with class 1")
    bad("Cmd", "09", "unexpected_end", "union key without a value")
    bad("map<string, u32>", "06 01 62 01 01 61 02", "map_key_order", "map keys b, a: unordered")
    bad("map<string, u32>", "06 01 61 01 01 61 02", "map_key_order", "duplicate map key")
    bad("map<i32, string>", "04 01 00 03 00", "map_key_order",
        "i32 keys -1, -2 (zigzag bytes ascending, values descending)")
    bad("map<bool, u8>", "04 01 00 00 00", "map_key_order", "bool keys true then false")
    bad("Hw", old_body("01 03 05 01 02 03 04 05"), "content_length", "array<u8,6> field with 5 bytes of content")
    bad("Hw", old_body("01 03 07 01 02 03 04 05 06 07"), "content_length", "array<u8,6> field with 7 bytes of content")
    bad("list<f32>", "06 00 00 80 3f 00 00", "ragged_list", "list<f32> content of 6 bytes")
    bad("list<f64>", "04 00 00 80 3f", "ragged_list", "list<f64> content of 4 bytes")
    bad("SmallF64", old_body("01 03 04 00 00 80 3f"), "content_length", "f64 field with a 4-byte length")
    bad("Wrapper", old_body("01 03 04 01 01 05 09"), "content_length", "nested message content with a trailing byte")
    bad("Wrapper", old_body("01 03 09 01 01 05"), "length_out_of_bounds", "nested message length past the end")
    bad("Small", old_body("02 0d 05 ff ff ff ff 0f"), "length_out_of_bounds", "unknown class-3 field whose length runs past the end")
    bad("Small", old_body("02 05 05 80 00"), "non_canonical_varint", "unknown class-1 field with a non-canonical varint")
    bad("Small", old_body("02 09 05 00 00"), "unexpected_end", "unknown class-2 field cut short")
    bad("Limits", old_body("01 03 05 68 65 6c 6c 6f"), "max_len", "string field of 5 bytes, max_len 4")
    bad("Limits", old_body("03 30 03 01 02 03"), "max_len", "list field of 3 elements, max_len 2")
    bad("Limits", old_body("02 04 0b"), "range", "u8 field 11, range 1..=10")
    bad("Limits", old_body("04 40 0b"), "range", "i32 field -6, range -5..=5")
    nest = "01"
    ty = "u8"
    for _ in range(40):
        nest = uvarint(len(H(nest))).hex() + nest
        ty = f"list<{ty}>"
    bad(ty, nest, "depth_exceeded", "40 nested single-element lists")
    body = b"\x00"
    for _ in range(40):
        body = H("03") + uvarint(len(body)) + body
    bad("Chain", body.hex(), "depth_exceeded", "recursive message nested 41 deep")


def gen_fingerprints():
    for name, d in [
        ("A", "spec §8 example"),
        ("SlotTelemetry", "§9 message"),
        ("WithState", "enums: values only, ascending numerically"),
        ("Cmd", "union with id"),
        ("Leaf", "union without id, recursive through a message"),
        ("Limits", "max_len and range attributes (negative range bound)"),
        ("Outer", "nested messages expanded inline"),
        ("Tree", "recursive message without id"),
        ("Ping", "mutual recursion: @0 two levels down"),
        ("Pong", "mutual recursion seen from the other type"),
        ("Containers", "map, array, optional, nested containers"),
        ("Empty", "empty message with id"),
        ("Node", "message -> union -> message recursion"),
        ("Envelope", "message with union field"),
    ]:
        types = referenced([name])
        c, fp = fingerprint(Schema(types), name)
        add({"group": "fingerprint", "description": d, "types": types, "type": name,
             "canon": c, "value": fp})


# ---------------------------------------------------------------------------
# Fragment vectors (tests/vectors/fragments-v1.json, run with --fragments)
# ---------------------------------------------------------------------------

FRAG_VECTORS = []

# A vector whose outcome depends on a reading of §2.6 that the document leaves
# open carries an `ambiguity` string saying which reading was taken (fvec's
# `ambiguity` argument).  Since the clarification of §2.6 (link-frame keys
# include the opcode, every message is bounded, interleaving is checked before
# size, reassembly ignores SEQ) the only open point is the call header (§2.7)
# of fragments:
#
# AMBIGUITY (calls, §2.6 with §2.7).  Rule 1 makes the key kind, type id and
# correlation id; the call header is not in it.  Rule 4 gives the joined
# message its first fragment's header.  Read literally, as done here: a
# request fragment continues a call whatever its own CALL bit and call header
# (absent, equal or different), and the joined message is a call exactly
# when the first fragment is one, with the first fragment's call header.  The
# document does not say (a) whether a sender writes CALL and the call header
# on the first fragment only or on every fragment, nor (b) whether a receiver
# must refuse later fragments whose call header is missing or differs from the
# first's.  The vectors where (b) matters carry an `ambiguity` field; the
# plain case (call header on the first fragment only) is what rules 1 and 4
# give under any reading that does not make (b) an error.
CALL_AMBIGUITY = ("§2.6 does not say whether later fragments of a call may carry a call header "
                  "that differs from (or is missing on) the first; read literally (rule 1: the call "
                  "header is not part of the key; rule 4: the joined message has the first "
                  "fragment's header), they join and the first fragment's call header is kept")


def fr(kind: str, payload=b"", t: int | None = None, c: int | None = None,
       seq: int | None = None, more: bool = False, call_: dict | None = None) -> dict:
    """One frame of a fragment vector: header JSON and payload hex."""
    if isinstance(payload, str):
        payload = H(payload)
    return {"header": header(kind, t, c, seq, more, call_), "payload": payload.hex()}


def pat(n: int, start: int = 1) -> bytes:
    return bytes((start + i) % 256 for i in range(n))


def split(kind: str, payload: bytes, sizes: list[int], t: int | None = None,
          c: int | None = None, seqs: list | None = None) -> list[dict]:
    """`payload` cut into pieces of `sizes`; every piece but the last has MORE."""
    assert sum(sizes) == len(payload), (sizes, len(payload))
    out, pos = [], 0
    for i, n in enumerate(sizes):
        seq = seqs[i] if seqs else None
        out.append(fr(kind, payload[pos:pos + n], t, c, seq, more=i < len(sizes) - 1))
        pos += n
    return out


def fvec(description: str, frames: list[dict], messages: int, error: tuple | None = None,
         max_message: int = MAX_MESSAGE, ambiguity: str | None = None) -> None:
    """Adds a vector; `messages` (how many are delivered) and `error` ((kind,
    frame index) or None) state what the description intends, and are checked
    against the reassembler before the vector is written."""
    hex_ = b"".join(encode_stream_frame(f["header"], bytes.fromhex(f["payload"])) for f in frames).hex()
    msgs, err = reassemble(frames, max_message)
    assert len(msgs) == messages, (description, msgs)
    assert (err["kind"], err["frame"]) == error if error else err is None, (description, err)
    v = {"description": description, "max_message": max_message, "frames": frames, "hex": hex_,
         "messages": msgs}
    if err is not None:
        v["error"] = err
    if ambiguity is not None:
        v["ambiguity"] = ambiguity
    FRAG_VECTORS.append(v)


def gen_fragments():
    # --- joining: two and many fragments --------------------------------------------
    fvec("spec §2.6 example: request type 20, correlation 1, payload 01 02 03 as two fragments",
         [fr("request", "0102", 20, 1, more=True), fr("request", "03", 20, 1)], 1)
    fvec("one-way type 3, two fragments of 6 and 4 bytes",
         split("one-way", pat(10), [6, 4], t=3), 1)
    fvec("one-way type 300 (varint type id), five fragments of 4 bytes",
         split("one-way", pat(20, 0x40), [4] * 5, t=300), 1)
    fvec("50 fragments of 0 to 4 bytes (one-way type 7)",
         split("one-way", pat(100, 0x80), [i % 5 for i in range(50)], t=7), 1)
    fvec("a fragment of 200 bytes (2-byte length prefix) then one of 3 bytes (request type 16, correlation 128)",
         split("request", pat(203, 0x10), [200, 3], t=16, c=128), 1)

    # --- empty fragments --------------------------------------------------------------
    fvec("empty first fragment",
         split("one-way", pat(5), [0, 5], t=2), 1)
    fvec("empty last fragment (MORE clear, no payload)",
         split("one-way", pat(5), [5, 0], t=2), 1)
    fvec("empty fragments in the middle",
         split("one-way", pat(6), [2, 0, 0, 4, 0, 0], t=2), 1)
    fvec("every fragment empty: the joined message has an empty payload",
         split("response", b"", [0, 0, 0], t=9, c=3), 1)

    # --- every kind -------------------------------------------------------------------
    fvec("response type 4, correlation 7, three fragments",
         split("response", pat(12, 0xa0), [5, 5, 2], t=4, c=7), 1)
    err_body = encode_error_body(1003, "the handler ran out of buffer space")
    fvec("error response, correlation 300: error body cut inside its code varint and inside its string",
         split("error", err_body, [1, 10, len(err_body) - 11], c=300), 1)
    fvec("stream item type 5, correlation 1, two fragments",
         split("stream-item", pat(7, 0x30), [4, 3], t=5, c=1), 1)
    end_body = encode_error_body(9, "shutting down")
    fvec("stream end with an error body, correlation 1, two fragments",
         split("stream-end", end_body, [3, len(end_body) - 3], c=1), 1)
    fvec("stream end without a body, correlation 2, as two empty fragments",
         split("stream-end", b"", [0, 0], c=2), 1)
    fvec("cancel, correlation 9, as two empty fragments",
         split("cancel", b"", [0, 0], c=9), 1)
    fvec("ack (link opcode 0) n = 300: uvarint ac 02 cut in two",
         split("ack", uvarint(300), [1, 1]), 1)
    fvec("hello (link opcode 1), three fragments",
         split("hello", pat(11, 0x61), [4, 4, 3]), 1)
    fvec("welcome (link opcode 2), two fragments",
         split("welcome", pat(6, 0x71), [3, 3]), 1)
    fvec("ping (link opcode 3) de ad be ef, two fragments: delivered as one ping",
         split("ping", H("deadbeef"), [2, 2]), 1)
    fvec("pong (link opcode 4) de ad be ef, two fragments: delivered as one pong",
         split("pong", H("deadbeef"), [1, 3]), 1)
    close_body = encode_error_body(9, "bye")
    fvec("close (link opcode 5) with an error body, three fragments",
         split("close", close_body, [1, 2, len(close_body) - 3]), 1)

    # --- SEQ --------------------------------------------------------------------------
    fvec("SEQ on every fragment (5, 6, 7): the joined message carries 5",
         split("one-way", pat(9), [3, 3, 3], t=3, seqs=[5, 6, 7]), 1)
    fvec("request with type id 2^32-1, correlation id 2^64-1, SEQ 2^64-2 and 2^64-1: the joined message carries 2^64-2",
         split("request", pat(4), [2, 2], t=U32_MAX, c=U64_MAX, seqs=[U64_MAX - 1, U64_MAX]), 1)
    fvec("SEQ on the second and third fragments only: reassembly does not look at SEQ, the joined message has the first fragment's (none)",
         split("one-way", pat(6), [2, 2, 2], t=3, seqs=[None, 8, 9]), 1)
    fvec("SEQ on the first fragment only (4): the joined message carries 4",
         split("one-way", pat(6), [2, 2, 2], t=3, seqs=[4, None, None]), 1)
    fvec("SEQ not increasing (9, 2, 9): reassembly does not look at SEQ, the joined message carries 9",
         split("one-way", pat(6), [2, 2, 2], t=3, seqs=[9, 2, 9]), 1)
    fvec("fragments with SEQ 10 and 13, complete frames with SEQ 11 and 12 between them",
         [fr("one-way", pat(4), 3, seq=10, more=True),
          fr("response", "00", 4, 7, seq=11),
          fr("ping", "01", seq=12),
          fr("one-way", pat(4, 5), 3, seq=13)], 3)

    # --- complete frames with other keys between fragments --------------------------------
    fvec("a one-way of another type id between two fragments",
         [fr("one-way", pat(3), 3, more=True), fr("one-way", "aa", 4), fr("one-way", pat(3, 4), 3)], 2)
    fvec("a ping and a response between the fragments of a request",
         [fr("request", pat(4), 20, 1, more=True),
          fr("ping", "0102"),
          fr("request", pat(4, 5), 20, 1, more=True),
          fr("response", "01022a", 4, 7),
          fr("request", pat(2, 9), 20, 1)], 3)
    fvec("ack, pong and cancel between the fragments of a one-way",
         [fr("one-way", pat(2), 6, more=True), fr("ack", uvarint(4)), fr("pong", "0102"),
          fr("cancel", c=5), fr("one-way", pat(2, 3), 6)], 4)
    fvec("a response with the type id and correlation id of the request in progress passes through (the kind differs)",
         [fr("request", pat(3), 20, 1, more=True), fr("response", "ff", 20, 1), fr("request", pat(3, 4), 20, 1)], 2)
    fvec("stream items of another type id, and of another correlation id, pass through",
         [fr("stream-item", pat(2), 5, 1, more=True), fr("stream-item", "aa", 6, 1),
          fr("stream-item", "bb", 5, 2), fr("stream-item", pat(2, 3), 5, 1)], 3)
    fvec("an error response and a stream end with the correlation id of the stream item in progress pass through",
         [fr("stream-item", pat(2), 5, 1, more=True), fr("error", encode_error_body(2, "x"), c=1),
          fr("stream-end", c=1), fr("stream-item", pat(2, 3), 5, 1)], 3)
    fvec("a one-way between the fragments of a ping (link message in progress)",
         [fr("ping", "01", more=True), fr("one-way", "02", 1), fr("ping", "03")], 2)
    fvec("a complete pong between the fragments of a ping: the opcode is part of the key, the pong is delivered when it arrives",
         [fr("ping", "0102", more=True), fr("pong", "0304"), fr("ping", "05")], 2)
    fvec("ack, hello, welcome, pong and close (complete) between the fragments of a ping: five other keys",
         [fr("ping", "01", more=True), fr("ack", uvarint(7)), fr("hello", "aa"), fr("welcome", "bb"),
          fr("pong", "01"), fr("close", encode_error_body(0, "")), fr("ping", "02")], 6)
    fvec("a complete ping between the fragments of a pong passes through",
         [fr("pong", "01", more=True), fr("ping", "02"), fr("pong", "03")], 2)
    fvec("maximum 16: a complete frame of 16 bytes between fragments of 8 + 8 is not counted in the joined size",
         [fr("one-way", pat(8), 3, more=True), fr("one-way", pat(16), 4), fr("one-way", pat(8, 9), 3)], 2,
         max_message=16)

    # --- same-key final frame; sequences of messages ---------------------------------------
    fvec("a complete frame with the key of the message in progress is its last fragment; the next one is a whole message",
         [fr("request", pat(2), 20, 1, more=True), fr("one-way", "05", 5), fr("request", "0304", 20, 1),
          fr("request", "0506", 20, 1)], 3)
    fvec("two fragmented messages one after the other, with the same key",
         split("request", pat(4), [2, 2], t=20, c=1) + split("request", pat(5, 9), [1, 4], t=20, c=1), 2)
    fvec("a fragmented one-way followed by a fragmented ping",
         split("one-way", pat(4), [2, 2], t=3) + split("ping", pat(3, 7), [1, 1, 1]), 2)

    # --- interleaved fragments ----------------------------------------------------------
    fvec("interleaved: a one-way of another type id with MORE while one is in progress",
         [fr("one-way", pat(2), 3, more=True), fr("one-way", pat(2), 4, more=True)], 0, ("interleaved", 1))
    fvec("interleaved: a request with another correlation id with MORE",
         [fr("request", pat(2), 20, 1, more=True), fr("request", pat(2), 20, 2, more=True)], 0, ("interleaved", 1))
    fvec("interleaved: a response with the request's type id and correlation id, with MORE",
         [fr("request", pat(2), 20, 1, more=True), fr("response", pat(2), 20, 1, more=True)], 0, ("interleaved", 1))
    fvec("interleaved: a ping with MORE while a one-way is in progress",
         [fr("one-way", pat(2), 3, more=True), fr("ping", "01", more=True)], 0, ("interleaved", 1))
    fvec("interleaved: an ack with MORE while a close is in progress (the opcode is part of the key)",
         [fr("close", "09", more=True), fr("ack", "03", more=True), fr("close", "00")], 0, ("interleaved", 1))
    fvec("interleaved: a pong with MORE while a ping is in progress",
         [fr("ping", "0102", more=True), fr("pong", "0102", more=True)], 0, ("interleaved", 1))
    fvec("maximum 16: a frame with MORE, another key and 17 bytes while a message is in progress is interleaved, not too large",
         [fr("one-way", pat(8), 3, more=True), fr("one-way", pat(17), 4, more=True)], 0, ("interleaved", 1),
         max_message=16)
    fvec("interleaved after whole and joined messages; the frames after the error are not read",
         [fr("one-way", "01", 3), fr("one-way", "02", 5, more=True), fr("one-way", "03", 5),
          fr("request", pat(2), 20, 1, more=True), fr("ping", "04"), fr("one-way", "05", 1),
          fr("one-way", "06", 2, more=True), fr("request", pat(2, 3), 20, 1)], 4, ("interleaved", 6))

    # --- maximum message size ---------------------------------------------------------
    fvec("maximum 16: a first fragment of exactly 16 bytes, then an empty last fragment",
         split("one-way", pat(16), [16, 0], t=3), 1, max_message=16)
    fvec("maximum 16: a first fragment of 17 bytes is refused before it is buffered",
         split("one-way", pat(17), [17, 0], t=3), 0, ("too_large", 0), max_message=16)
    fvec("maximum 16: 6 + 5 + 5 bytes joined to exactly 16",
         split("one-way", pat(16), [6, 5, 5], t=3), 1, max_message=16)
    fvec("maximum 16: 6 + 5 + 6 bytes, refused at the last fragment",
         split("one-way", pat(17), [6, 5, 6], t=3), 0, ("too_large", 2), max_message=16)
    fvec("maximum 16: 10 + 7 bytes, refused at the second fragment (MORE set)",
         split("one-way", pat(20), [10, 7, 3], t=3), 0, ("too_large", 1), max_message=16)
    fvec("maximum 16: a whole (unfragmented) frame of 17 bytes is too large",
         [fr("one-way", pat(17), 3)], 0, ("too_large", 0), max_message=16)
    fvec("maximum 16: whole frames of exactly 16 payload bytes are accepted, the header is not counted",
         [fr("one-way", pat(16), 3),
          fr("request", pat(16, 0x20), U32_MAX, U64_MAX, seq=U64_MAX)], 2, max_message=16)
    fvec("maximum 16: a whole frame of 17 bytes with another key between fragments is too large (after a whole frame of 16 was delivered)",
         [fr("one-way", pat(8), 3, more=True), fr("one-way", pat(16), 4), fr("ping", pat(17)),
          fr("one-way", pat(8, 9), 3)], 1, ("too_large", 2), max_message=16)
    fvec("maximum 16: a whole ping of 17 bytes is too large (link frames are bounded too)",
         [fr("ping", pat(17))], 0, ("too_large", 0), max_message=16)

    # --- calls (§2.7): the call header is not part of the key ---------------------------
    c1 = call(1, 2, 5000)
    fvec("a call (service 1, method 2, deadline 5000) in three fragments, the call header on the first only: the joined message is the call",
         [fr("request", pat(4), 4, 3, more=True, call_=c1), fr("request", pat(4, 5), 4, 3, more=True),
          fr("request", pat(2, 9), 4, 3)], 1)
    fvec("a call with SEQ on every fragment (1, 2): the joined call carries seq 1 and the first fragment's call header",
         [fr("request", pat(3), 300, 5, seq=1, more=True, call_=call(2, 7, 0)),
          fr("request", pat(3, 4), 300, 5, seq=2)], 1)
    fvec("a call whose every fragment repeats the same call header",
         [fr("request", pat(2), 4, 3, more=True, call_=c1), fr("request", pat(2, 3), 4, 3, call_=c1)], 1,
         ambiguity=CALL_AMBIGUITY)
    fvec("a call whose last fragment has another call header: the key matches, the first fragment's call header is kept",
         [fr("request", pat(2), 4, 3, more=True, call_=c1),
          fr("request", pat(2, 3), 4, 3, call_=call(9, 9, 9))], 1, ambiguity=CALL_AMBIGUITY)
    fvec("a plain request whose last fragment has CALL: the joined message is a plain request (the first fragment's header)",
         [fr("request", pat(2), 4, 3, more=True), fr("request", pat(2, 3), 4, 3, call_=c1)], 1,
         ambiguity=CALL_AMBIGUITY)
    fvec("a complete call with another correlation id, stream items, a credit and a cancel between the fragments of a call",
         [fr("request", pat(2), 4, 3, more=True, call_=c1),
          fr("request", "01", 4, 5, call_=c1),
          fr("stream-item", "02", 8, 2),
          fr("credit", encode_credit(2, 4)),
          fr("cancel", c=1),
          fr("request", pat(2, 3), 4, 3)], 5)
    fvec("a client-streaming call: the call frame (empty payload), a fragmented stream item, the stream end",
         [fr("request", b"", 6, 7, call_=call(1, 4, 0)),
          fr("stream-item", pat(3), 6, 7, more=True), fr("stream-item", pat(3, 4), 6, 7),
          fr("stream-end", c=7)], 3)
    fvec("a credit (link opcode 7) in two fragments: delivered as one credit",
         split("credit", encode_credit(300, 16), [1, 2]), 1)
    fvec("a complete credit between the fragments of a ping: the opcode is part of the key",
         [fr("ping", "01", more=True), fr("credit", encode_credit(1, 1)), fr("ping", "02")], 2)
    fvec("interleaved: a call with another correlation id and MORE while a call is in progress",
         [fr("request", pat(2), 4, 3, more=True, call_=c1),
          fr("request", pat(2), 4, 5, more=True, call_=c1)], 0, ("interleaved", 1))
    fvec("interleaved: a credit with MORE while a ping is in progress",
         [fr("ping", "01", more=True), fr("credit", "01", more=True)], 0, ("interleaved", 1))
    fvec("maximum 16: a call's payload is bounded like any message, the call header is not counted",
         [fr("request", pat(16), U32_MAX, U64_MAX, call_=call(U32_MAX, U16_MAX, U64_MAX)),
          fr("request", pat(9), 4, 3, more=True, call_=c1), fr("request", pat(8), 4, 3)], 1,
         ("too_large", 2), max_message=16)
    fvec("truncated: the stream ends inside a call",
         [fr("request", pat(3), 4, 3, more=True, call_=c1), fr("credit", encode_credit(2, 1))], 1,
         ("truncated", 2))

    # --- truncated --------------------------------------------------------------------
    fvec("truncated: the stream ends after a first fragment",
         [fr("request", pat(3), 20, 1, more=True)], 0, ("truncated", 1))
    fvec("truncated: complete frames between the fragments are delivered, the partial message is not",
         [fr("one-way", pat(2), 3, more=True), fr("ping", "01"), fr("one-way", pat(2), 3, more=True),
          fr("response", "00", 4, 7)], 2, ("truncated", 4))
    fvec("truncated: a joined message, then the stream ends inside the next one",
         split("one-way", pat(4), [2, 2], t=3) + [fr("one-way", pat(2), 3, more=True)], 1, ("truncated", 3))
    fvec("truncated: a ping in progress and a complete pong (another key) do not end it",
         [fr("ping", "0102", more=True), fr("pong", "0304")], 1, ("truncated", 2))


def check_fragment_vector(v: dict) -> None:
    """The stream bytes are the frames (§3), and the frames reassemble to the
    messages and error given; every message is its fragments joined (rule 4)."""
    data = bytes.fromhex(v["hex"])
    assert decode_stream(data) == v["frames"], v["description"]
    frames = v["frames"]
    msgs, err = reassemble(frames, v["max_message"])
    assert msgs == v["messages"] and err == v.get("error"), v["description"]
    for m in msgs:
        parts = [frames[i] for i in m["fragments"]]
        assert m["header"] == dict(parts[0]["header"], more=False)
        assert m["payload"] == "".join(p["payload"] for p in parts)
        assert all(frame_key(p["header"]) == frame_key(parts[0]["header"]) for p in parts)
        assert [p["header"]["more"] for p in parts] == [True] * (len(parts) - 1) + [False]
    if err is not None:
        assert err["kind"] in FRAGMENT_ERRORS
        assert err["open"] <= err["frame"] <= len(frames)


def main_fragments():
    assert encode_stream_frame(header("request", 20, 1, more=True), H("0102")) == H("05 90 02 14 01 01 02")
    assert encode_stream_frame(header("request", 20, 1), H("03")) == H("03 10 14 01 03")
    gen_fragments()
    for v in FRAG_VECTORS:
        try:
            check_fragment_vector(v)
        except Exception:
            print(f"self-check failed: {json.dumps(v)[:400]}", file=sys.stderr)
            raise
    assert {v["error"]["kind"] for v in FRAG_VECTORS if "error" in v} == FRAGMENT_ERRORS
    out = {"version": 1, "vectors": FRAG_VECTORS}
    sys.stdout.write(json.dumps(out, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------

def expect_error(name, fn):
    try:
        fn()
    except WireError as e:
        assert e.name == name, f"expected {name}, got {e}"
        return
    raise AssertionError(f"expected {name}, decoding succeeded")


def check(v):
    g = v["group"]
    data = bytes.fromhex(v.get("hex", ""))
    err = v.get("error")

    if g in ("uvarint", "svarint"):
        def dec():
            r = Reader(data)
            x = r.uvarint() if g == "uvarint" else r.svarint()
            r.finish()
            return x
        if err:
            return expect_error(err, dec)
        enc = uvarint(v["value"]) if g == "uvarint" else svarint(v["value"])
        assert enc == data and dec() == v["value"]
    elif g in ("f32", "f64"):
        w = 4 if g == "f32" else 8
        fmt = "<I" if g == "f32" else "<Q"
        bits = int(v["bits"], 16)
        assert struct.pack(fmt, bits) == data and len(data) == w
        got = struct.unpack(fmt, data)[0]
        assert got == bits
        x = (f32_from_bits if g == "f32" else f64_from_bits)(got)
        if v["value"] == "NaN":
            assert x == "NaN"
        else:
            assert (f32_bits if g == "f32" else f64_bits)(v["value"]) == bits
            assert x == v["value"] and (not isinstance(x, float) or math.copysign(1, x) == math.copysign(1, v["value"]))
    elif g == "header":
        def dec():
            r = Reader(data)
            h = decode_header(r)
            r.finish("header")
            return h
        if err:
            return expect_error(err, dec)
        assert encode_header(v["value"]) == data
        assert dec() == v["value"]
    elif g == "error_body":
        def dec():
            r = Reader(data)
            b = decode_error_body(r)
            r.finish("error body")
            return b
        if err:
            return expect_error(err, dec)
        assert encode_error_body(v["value"]["code"], v["value"]["message"]) == data
        assert dec() == v["value"]
    elif g == "credit":
        def dec():
            return decode_credit(Reader(data))
        if err:
            return expect_error(err, dec)
        assert encode_credit(v["value"]["correlation"], v["value"]["bytes"]) == data
        assert dec() == v["value"]
    elif g == "ack":
        def dec():
            return decode_ack(Reader(data))
        if err:
            return expect_error(err, dec)
        assert encode_ack(v["value"]["received"]) == data
        assert dec() == v["value"]
    elif g == "batch":
        def dec():
            return decode_batch(Reader(data))
        if err:
            return expect_error(err, dec)
        items = [bytes.fromhex(i) for i in v["value"]["items"]]
        assert encode_batch(items) == data
        assert dec() == items
        assert sum(item_cost(i) for i in items) == v["value"]["cost"]
    elif g == "stream_frame":
        if err:
            return expect_error(err, lambda: decode_stream_frame(data, v["max_frame"]))
        val_ = v["value"]
        assert encode_stream_frame(val_["header"], bytes.fromhex(val_["payload"])) == data
        assert decode_stream_frame(data) == val_
    elif g == "serial_frame":
        if err:
            return expect_error(err, lambda: decode_serial_frame(data, v["addressed"]))
        val_ = v["value"]
        assert encode_serial_frame(val_["address"], val_["header"], bytes.fromhex(val_["payload"])) == data
        assert decode_serial_frame(data, val_["address"] is not None) == val_
    elif g == "cobs":
        if err:
            return expect_error(err, lambda: cobs_decode(data))
        assert cobs_encode(bytes.fromhex(v["value"])) == data
        assert 0 not in data
        assert cobs_decode(data).hex() == v["value"]
    elif g == "value":
        sch = Schema(v["types"])
        if err:
            return expect_error(err, lambda: sch.decode_value(v["type"], data))
        assert sch.encode_value(v["type"], v["value"]) == data, v["description"]
        got = sch.decode_value(v["type"], data)
        t = parse_type(v["type"])
        assert sch.norm(t, got) == sch.norm(t, v["value"]), (v["description"], got)
        assert sch.encode_value(v["type"], got) == data
    elif g == "fingerprint":
        c, fp = fingerprint(Schema(v["types"]), v["type"])
        assert c == v["canon"] and fp == v["value"]
    else:
        raise AssertionError(g)


def spec_examples():
    """Byte strings quoted in docs/wire-format.md."""
    assert uvarint(300) == H("ac 02") and uvarint(U64_MAX) == H("ff ff ff ff ff ff ff ff ff 01")
    assert svarint(-1500) == H("b7 17") and svarint(-(1 << 63)) == H("ff" * 9 + "01")
    assert encode_header(header("request", 20, 1, seq=5, more=True)) == H("90 03 14 01 05")
    assert encode_header(header("one-way", 3, seq=42)) == H("83 01 2a")
    assert encode_stream_frame(header("one-way", 3), H("010203")) == H("03 03 01 02 03")
    assert encode_stream_frame(header("one-way", 1), b"") == H("00 01")
    assert cobs_encode(H("11 22 00 33")) == H("03 11 22 02 33")
    assert cobs_encode(H("00")) == H("01 01") and cobs_encode(b"") == H("01")
    body = S.encode_body("SlotTelemetry", {"slot": 2, "voltage_mv": 48120, "current_ma": -1500,
                                           "temperature_c": 23.5, "charging": True, "energy_wh": 0})
    assert body == H("95 03 02 f8 f7 02 b7 17 00 00 bc 41 01"), body.hex()
    assert encode_stream_frame(header("one-way", 3), body) == H("0d 03 95 03 02 f8 f7 02 b7 17 00 00 bc 41 01")
    assert len(encode_serial_frame(None, header("one-way", 3), body)) == 20
    assert fingerprint(S, "A")[0] == "#5message{1:u8;2:list<@0>;}"
    assert encode_header(header("request", 4, 3, call_=call(1, 2, 5000))) == H("94 04 03 01 02 88 27")
    assert encode_header(header("credit")) == H("77")
    # The encoder refuses what a decoder rejects (§2.3, §2.7).
    for h in [header("response", 4, 3, call_=call(1, 2)), header("request", 4, 3, call_=call(1, 0)),
              header("request", 4, 3, call_=call(1, U16_MAX + 1)),
              header("request", 4, 3, call_=call(U32_MAX + 1, 1))]:
        try:
            encode_header(h)
        except EncodeError:
            continue
        raise AssertionError(f"encoded {h}")


def depth_examples():
    """§7 at its boundary: the smallest depth limit that decodes each payload.
    The same cases as tests/codegen/tests/depth_rule.rs, where generated Rust
    code and the dynamic codec answer them."""
    global MAX_DEPTH
    sc = Schema({
        "Scalars": MSG(None, F("u32", 4, "u32"), F("f32", 10, "f32"), F("f64", 11, "f64"),
                       F("s", 12, "string"), F("raw", 13, "bytes")),
        "Choice": UNION(3, ("ratio", 3, "f32"), ("precise", 4, "f64"), ("pair", 6, "array<u8, 2>"),
                        ("inner", 7, "Scalars")),
        "Node": MSG(4, F("left", 2, "optional<Node>"), F("children", 4, "list<Node>")),
        "Expr": UNION(5, ("lit", 1, "i64"), ("neg", 2, "Neg")),
        "Neg": MSG(None, F("inner", 1, "optional<Expr>")),
        "Hw": MSG(None, F("mac", 1, "array<u8, 6>")),
        "Lists": MSG(None, F("many", 21, "list<Scalars>"), F("choices", 24, "list<Choice>")),
        "OptF64": MSG(None, F("v", 1, "optional<f64>")),
        "ListF64": MSG(None, F("v", 1, "list<f64>")),
        "ListOptF64": MSG(None, F("v", 1, "list<optional<f64>>")),
        "ListArray": MSG(None, F("v", 1, "list<array<u8, 2>>")),
        "U": UNION(None, ("n", 1, "u8"), ("x", 2, "f64")),
        "MapUnion": MSG(None, F("v", 1, "map<u8, U>")),
        "OptU": MSG(None, F("v", 1, "optional<U>")),
        "Chain": MSG(None, F("next", 1, "optional<Chain>"), F("v", 2, "u8")),
    })
    cases = [
        ("Scalars", {"u32": 7, "f32": 1.5, "s": "text", "raw": "AQI="}, 0),
        ("Scalars", {"f64": 1.5}, 1),
        ("Choice", {"ratio": 1.5}, 0),
        ("Choice", {"precise": 1.5}, 1),
        ("Choice", {"pair": [1, 2]}, 2),
        ("Choice", {"inner": {"f64": 1.5}}, 2),
        ("Node", {"left": {}}, 1),
        ("Node", {"children": [{}]}, 2),
        ("Expr", {"neg": {"inner": {"lit": 1}}}, 2),
        ("Hw", {}, 2),
        ("Lists", {"choices": [{"precise": 1.5}]}, 3),
        ("Lists", {"many": [{"f64": 1.5}]}, 3),
        ("OptF64", {"v": 1.5}, 1),
        ("ListF64", {"v": [1.5]}, 1),
        ("ListOptF64", {"v": [1.5]}, 2),
        ("ListOptF64", {"v": [None]}, 1),
        ("ListArray", {"v": [[1, 2], [3, 4]]}, 2),
        ("MapUnion", {"v": {"5": {"n": 9}}}, 2),
        ("MapUnion", {"v": {"5": {"x": 1.5}}}, 3),
        ("OptU", {"v": {"n": 9}}, 1),
    ]
    chain = {}
    for _ in range(32):
        chain = {"next": chain}
    saved = MAX_DEPTH
    try:
        for name, value, levels in cases:
            data = sc.encode_value(name, value)
            MAX_DEPTH = levels
            sc.decode_value(name, data)
            if levels:
                MAX_DEPTH = levels - 1
                expect_error("depth_exceeded", lambda: sc.decode_value(name, data))
    finally:
        MAX_DEPTH = saved
    # With the default limit of 32, a message nested 32 deep decodes, 33 does not.
    sc.decode_value("Chain", sc.encode_value("Chain", chain))
    expect_error("depth_exceeded", lambda: sc.decode_value("Chain", sc.encode_value("Chain", {"next": chain})))


def main():
    spec_examples()
    depth_examples()
    gen_varints()
    gen_floats()
    gen_headers()
    gen_call_headers()
    gen_error_bodies()
    gen_credit()
    gen_batch()
    gen_stream()
    gen_serial()
    gen_cobs()
    gen_values()
    gen_fingerprints()
    gen_ack()
    for v in VECTORS:
        try:
            check(v)
        except Exception:
            print(f"self-check failed: {json.dumps(v)[:400]}", file=sys.stderr)
            raise
    seen = {v.get("error") for v in VECTORS} - {None}
    missing = ERROR_NAMES - seen
    assert not missing, f"no vector for {missing}"
    out = {"version": 1, "vectors": VECTORS}
    sys.stdout.write(json.dumps(out, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--fragments"]:
        main_fragments()
    elif not args:
        main()
    else:
        sys.exit(f"usage: {sys.argv[0]} [--fragments]")
