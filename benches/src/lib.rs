//! The same four messages as isml generated types and as prost types, with
//! deterministic sample data, for the benchmarks in `benches/codec.rs` and the
//! comparison table printed by `src/bin/compare.rs`; and, in [`rpc`], the
//! isml, tonic and raw TCP peers of `src/bin/rpc-compare.rs`; in
//! [`serial_link`], the shaped serial line of `src/bin/serial-link.rs`.

pub mod cluster;
pub mod rpc;
pub mod serial_link;

/// isml types generated from `schemas/bench.isml`.
pub mod bench {
    isml_runtime::include_schema!("bench");
}

/// prost types equivalent to `schemas/bench.isml` (u8 and u16 fields become
/// uint32, signed fields sint32/sint64 so both sides use zigzag, the enum an
/// enumeration).
pub mod pb {
    /// Mirrors `bench.SlotState`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SlotState {
        /// empty
        Empty = 0,
        /// charging
        Charging = 1,
        /// full
        Full = 2,
        /// fault
        Fault = 3,
    }

    /// Mirrors `bench.Telemetry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Telemetry {
        /// slot
        #[prost(uint32, tag = "1")]
        pub slot: u32,
        /// voltage_mv
        #[prost(uint32, tag = "2")]
        pub voltage_mv: u32,
        /// current_ma
        #[prost(sint32, tag = "3")]
        pub current_ma: i32,
        /// temperature_c
        #[prost(sint32, tag = "4")]
        pub temperature_c: i32,
        /// charging
        #[prost(bool, tag = "5")]
        pub charging: bool,
        /// energy_wh
        #[prost(uint64, tag = "6")]
        pub energy_wh: u64,
        /// soc_percent
        #[prost(uint32, tag = "7")]
        pub soc_percent: u32,
        /// state
        #[prost(enumeration = "SlotState", tag = "8")]
        pub state: i32,
        /// power_w
        #[prost(uint32, tag = "9")]
        pub power_w: u32,
        /// seq
        #[prost(uint32, tag = "10")]
        pub seq: u32,
        /// fan_on
        #[prost(bool, tag = "11")]
        pub fan_on: bool,
    }

    /// Mirrors `bench.Config`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Config {
        /// device
        #[prost(string, tag = "1")]
        pub device: String,
        /// settings
        #[prost(btree_map = "string, uint32", tag = "2")]
        pub settings: std::collections::BTreeMap<String, u32>,
        /// limit_ma
        #[prost(uint32, optional, tag = "3")]
        pub limit_ma: Option<u32>,
        /// label
        #[prost(string, optional, tag = "4")]
        pub label: Option<String>,
        /// offset
        #[prost(sint32, optional, tag = "5")]
        pub offset: Option<i32>,
        /// enabled
        #[prost(bool, optional, tag = "6")]
        pub enabled: Option<bool>,
    }

    /// Mirrors `bench.LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        /// ts_s
        #[prost(uint32, tag = "1")]
        pub ts_s: u32,
        /// ts_ns
        #[prost(uint32, tag = "2")]
        pub ts_ns: u32,
        /// level
        #[prost(uint32, tag = "3")]
        pub level: u32,
        /// line
        #[prost(uint32, tag = "4")]
        pub line: u32,
        /// host
        #[prost(string, tag = "5")]
        pub host: String,
        /// app
        #[prost(string, tag = "6")]
        pub app: String,
        /// module
        #[prost(string, tag = "7")]
        pub module: String,
        /// text
        #[prost(string, tag = "8")]
        pub text: String,
        /// pid
        #[prost(uint32, tag = "9")]
        pub pid: u32,
        /// seq
        #[prost(uint64, tag = "10")]
        pub seq: u64,
    }

    /// Mirrors `bench.Slot`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Slot {
        /// index
        #[prost(uint32, tag = "1")]
        pub index: u32,
        /// state
        #[prost(uint32, tag = "2")]
        pub state: u32,
        /// soc_percent
        #[prost(uint32, tag = "3")]
        pub soc_percent: u32,
        /// cells_mv (packed)
        #[prost(uint32, repeated, tag = "4")]
        pub cells_mv: Vec<u32>,
        /// temperature_c
        #[prost(float, tag = "5")]
        pub temperature_c: f32,
    }

    /// Mirrors `bench.Station`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Station {
        /// station_id
        #[prost(string, tag = "1")]
        pub station_id: String,
        /// slots
        #[prost(message, repeated, tag = "2")]
        pub slots: Vec<Slot>,
        /// firmware
        #[prost(string, tag = "3")]
        pub firmware: String,
        /// uptime_s
        #[prost(uint64, tag = "4")]
        pub uptime_s: u64,
        /// faults (packed)
        #[prost(uint32, repeated, tag = "5")]
        pub faults: Vec<u32>,
    }
}

/// `count` telemetry readings with realistic, varying values.
pub fn telemetry(count: usize) -> Vec<bench::Telemetry> {
    (0..count)
        .map(|i| {
            let i32v = i as i32;
            bench::Telemetry {
                slot: (i % 12) as u8,
                voltage_mv: 48_000 + (i as u16 * 37) % 900,
                current_ma: -1_500 + ((i32v * 13) % 400) as i16,
                temperature_c: -5 + (i % 40) as i8,
                charging: i % 3 != 0,
                energy_wh: 10_000 + i as u64 * 7,
                soc_percent: (i % 101) as u8,
                state: bench::SlotState::from_u32((i % 4) as u32),
                power_w: 2_400 + (i as u32 * 11) % 300,
                seq: i as u32,
                fan_on: i % 5 == 0,
            }
        })
        .collect()
}

/// `count` log records.
pub fn logs(count: usize) -> Vec<bench::LogRecord> {
    (0..count)
        .map(|i| bench::LogRecord {
            ts_s: 1_790_000_000 + i as u32,
            ts_ns: (i as u32 * 7_919) % 1_000_000_000,
            level: (i % 5) as u32,
            line: 100 + (i % 900) as u32,
            host: format!("cabinet-{:04}", i % 500),
            app: "charger".to_string(),
            module: "slot::bms".to_string(),
            text: format!(
                "slot {} battery reported {} mV at {} degC",
                i % 12,
                3_600 + i % 500,
                20 + i % 15
            ),
            pid: 4_242,
            seq: i as u64,
        })
        .collect()
}

/// `count` stations with 8 slots of 13 cells each.
pub fn stations(count: usize) -> Vec<bench::Station> {
    (0..count)
        .map(|i| bench::Station {
            station_id: format!("ST-{:06}", i),
            slots: (0..8)
                .map(|s| bench::Slot {
                    index: s as u8,
                    state: (s % 4) as u32,
                    soc_percent: ((i + s) % 101) as u8,
                    cells_mv: (0..13)
                        .map(|c| 3_500 + ((i + s + c) % 200) as u16)
                        .collect(),
                    temperature_c: 20.0 + s as f32,
                })
                .collect(),
            firmware: "2.4.1-rc3".to_string(),
            uptime_s: 86_400 * 3 + i as u64,
            faults: if i % 4 == 0 { vec![17, 3] } else { vec![] },
        })
        .collect()
}

/// `count` device configurations: 0 to 5 settings, optionals present or not.
pub fn configs(count: usize) -> Vec<bench::Config> {
    const KEYS: [&str; 5] = ["max_current", "fan_curve", "report_s", "retries", "vmin"];
    (0..count)
        .map(|i| bench::Config {
            device: format!("dev-{:05}", i),
            settings: KEYS
                .iter()
                .take(i % 6)
                .enumerate()
                .map(|(k, key)| (key.to_string(), (i * 31 + k * 977) as u32 % 5_000))
                .collect(),
            limit_ma: (i % 2 == 0).then_some(16_000 + (i as u32 % 17) * 250),
            label: (i % 3 == 0).then(|| format!("bay {}", i % 40)),
            offset: (i % 4 != 0).then_some((i as i32 % 21) - 10),
            enabled: (i % 5 != 0).then_some(i % 2 == 0),
        })
        .collect()
}

impl From<&bench::Telemetry> for pb::Telemetry {
    fn from(t: &bench::Telemetry) -> Self {
        pb::Telemetry {
            slot: t.slot.into(),
            voltage_mv: t.voltage_mv.into(),
            current_ma: t.current_ma.into(),
            temperature_c: t.temperature_c.into(),
            charging: t.charging,
            energy_wh: t.energy_wh,
            soc_percent: t.soc_percent.into(),
            state: t.state.to_u32() as i32,
            power_w: t.power_w,
            seq: t.seq,
            fan_on: t.fan_on,
        }
    }
}

impl From<&bench::Config> for pb::Config {
    fn from(c: &bench::Config) -> Self {
        pb::Config {
            device: c.device.clone(),
            settings: c.settings.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            limit_ma: c.limit_ma,
            label: c.label.clone(),
            offset: c.offset,
            enabled: c.enabled,
        }
    }
}

impl From<&bench::LogRecord> for pb::LogRecord {
    fn from(l: &bench::LogRecord) -> Self {
        pb::LogRecord {
            ts_s: l.ts_s,
            ts_ns: l.ts_ns,
            level: l.level,
            line: l.line,
            host: l.host.clone(),
            app: l.app.clone(),
            module: l.module.clone(),
            text: l.text.clone(),
            pid: l.pid,
            seq: l.seq,
        }
    }
}

impl From<&bench::Station> for pb::Station {
    fn from(s: &bench::Station) -> Self {
        pb::Station {
            station_id: s.station_id.clone(),
            slots: s
                .slots
                .iter()
                .map(|x| pb::Slot {
                    index: x.index.into(),
                    state: x.state,
                    soc_percent: x.soc_percent.into(),
                    cells_mv: x.cells_mv.iter().map(|&c| c.into()).collect(),
                    temperature_c: x.temperature_c,
                })
                .collect(),
            firmware: s.firmware.clone(),
            uptime_s: s.uptime_s,
            faults: s.faults.clone(),
        }
    }
}

use std::hint::black_box;

/// The timed loops, one function per message type and side (never
/// inlined): each workload's loop is compiled and placed on its own, so a
/// change to how one message type encodes does not move the code of
/// another's (as it did when the four loops shared one function).
mod loops {
    use std::hint::black_box;

    #[inline(never)]
    pub(crate) fn isml_encode_to_vec<M: isml_runtime::Message>(msgs: &[M]) -> usize {
        let mut total = 0;
        for m in msgs {
            total += black_box(m.encode_to_vec().expect("valid")).len();
        }
        total
    }

    #[inline(never)]
    pub(crate) fn isml_encode<M: isml_runtime::Message>(msgs: &[M], buf: &mut Vec<u8>) -> usize {
        let mut total = 0;
        for m in msgs {
            buf.clear();
            m.encode(buf).expect("valid");
            total += black_box(&buf).len();
        }
        total
    }

    #[inline(never)]
    pub(crate) fn isml_decode<M: isml_runtime::Message>(
        bytes: &[Vec<u8>],
        read: impl Fn(&M) -> usize,
    ) -> usize {
        let mut n = 0;
        for b in bytes {
            n += read(black_box(&M::decode_slice(b).expect("valid")));
        }
        n
    }

    /// Clones every message and reads it: the allocations and copies any
    /// decoder into owned messages makes, without reading any bytes.
    #[inline(never)]
    pub(crate) fn clone_floor<M: Clone>(msgs: &[M], read: impl Fn(&M) -> usize) -> usize {
        let mut n = 0;
        for m in msgs {
            n += read(black_box(&black_box(m).clone()));
        }
        n
    }

    #[inline(never)]
    pub(crate) fn pb_encode_to_vec<M: prost::Message>(msgs: &[M]) -> usize {
        let mut total = 0;
        for m in msgs {
            total += black_box(m.encode_to_vec()).len();
        }
        total
    }

    #[inline(never)]
    pub(crate) fn pb_encode<M: prost::Message>(msgs: &[M], buf: &mut Vec<u8>) -> usize {
        let mut total = 0;
        for m in msgs {
            buf.clear();
            m.encode(buf).expect("room");
            total += black_box(&buf).len();
        }
        total
    }

    #[inline(never)]
    pub(crate) fn pb_decode<M: prost::Message + Default>(
        bytes: &[Vec<u8>],
        read: impl Fn(&M) -> usize,
    ) -> usize {
        let mut n = 0;
        for b in bytes {
            n += read(black_box(&M::decode(&b[..]).expect("valid")));
        }
        n
    }
}

use isml_runtime::{Enum as _, Message as _, Viewable};
use prost::Message as _;

/// Which of the four messages a [`Workload`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bench.Telemetry`.
    Telemetry,
    /// `bench.LogRecord`.
    LogRecord,
    /// `bench.Station`.
    Station,
    /// `bench.Config`.
    Config,
}

impl Kind {
    /// All kinds, in table order.
    pub const ALL: [Kind; 4] = [
        Kind::Telemetry,
        Kind::LogRecord,
        Kind::Station,
        Kind::Config,
    ];

    /// The workload a command line names: `telemetry`, `log`, `station`
    /// or `config`.
    pub fn from_arg(arg: &str) -> Option<Kind> {
        match arg {
            "telemetry" => Some(Kind::Telemetry),
            "log" => Some(Kind::LogRecord),
            "station" => Some(Kind::Station),
            "config" => Some(Kind::Config),
            _ => None,
        }
    }

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Telemetry => "telemetry (enum, narrow ints)",
            Kind::LogRecord => "log record (4 strings)",
            Kind::Station => "station (nested lists)",
            Kind::Config => "config (map, optionals)",
        }
    }
}

/// The same messages in both encodings, plus their encoded bytes.
pub struct Workload {
    /// Which message.
    pub kind: Kind,
    telemetry: Vec<bench::Telemetry>,
    logs: Vec<bench::LogRecord>,
    stations: Vec<bench::Station>,
    configs: Vec<bench::Config>,
    pb_telemetry: Vec<pb::Telemetry>,
    pb_logs: Vec<pb::LogRecord>,
    pb_stations: Vec<pb::Station>,
    pb_configs: Vec<pb::Config>,
    /// isml encodings, one per message.
    pub isml_bytes: Vec<Vec<u8>>,
    /// protobuf encodings, one per message.
    pub pb_bytes: Vec<Vec<u8>>,
}

impl Workload {
    /// `count` messages of `kind`.
    pub fn new(kind: Kind, count: usize) -> Workload {
        let mut w = Workload {
            kind,
            telemetry: Vec::new(),
            logs: Vec::new(),
            stations: Vec::new(),
            configs: Vec::new(),
            pb_telemetry: Vec::new(),
            pb_logs: Vec::new(),
            pb_stations: Vec::new(),
            pb_configs: Vec::new(),
            isml_bytes: Vec::new(),
            pb_bytes: Vec::new(),
        };
        match kind {
            Kind::Telemetry => {
                w.telemetry = telemetry(count);
                w.pb_telemetry = w.telemetry.iter().map(Into::into).collect();
                w.isml_bytes = w
                    .telemetry
                    .iter()
                    .map(|m| m.encode_to_vec().expect("valid"))
                    .collect();
                w.pb_bytes = w.pb_telemetry.iter().map(|m| m.encode_to_vec()).collect();
            }
            Kind::LogRecord => {
                w.logs = logs(count);
                w.pb_logs = w.logs.iter().map(Into::into).collect();
                w.isml_bytes = w
                    .logs
                    .iter()
                    .map(|m| m.encode_to_vec().expect("valid"))
                    .collect();
                w.pb_bytes = w.pb_logs.iter().map(|m| m.encode_to_vec()).collect();
            }
            Kind::Station => {
                w.stations = stations(count);
                w.pb_stations = w.stations.iter().map(Into::into).collect();
                w.isml_bytes = w
                    .stations
                    .iter()
                    .map(|m| m.encode_to_vec().expect("valid"))
                    .collect();
                w.pb_bytes = w.pb_stations.iter().map(|m| m.encode_to_vec()).collect();
            }
            Kind::Config => {
                w.configs = configs(count);
                w.pb_configs = w.configs.iter().map(Into::into).collect();
                w.isml_bytes = w
                    .configs
                    .iter()
                    .map(|m| m.encode_to_vec().expect("valid"))
                    .collect();
                w.pb_bytes = w.pb_configs.iter().map(|m| m.encode_to_vec()).collect();
            }
        }
        w
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.isml_bytes.len()
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.isml_bytes.is_empty()
    }

    /// Mean encoded size: (isml, protobuf) bytes per message.
    /// What `encode_to_vec` costs before any encoding: one vector of each
    /// message's isml length allocated, handed out and freed. No encoder
    /// returning a new vector can be faster than this.
    pub fn alloc_floor(&self) -> usize {
        let mut total = 0;
        for b in &self.isml_bytes {
            let v: Vec<u8> = Vec::with_capacity(black_box(b.len()));
            total += black_box(v).capacity();
        }
        total
    }

    /// Mean encoded bytes per message: (isml, protobuf).
    pub fn sizes(&self) -> (f64, f64) {
        let n = self.len() as f64;
        let isml: usize = self.isml_bytes.iter().map(Vec::len).sum();
        let pb: usize = self.pb_bytes.iter().map(Vec::len).sum();
        (isml as f64 / n, pb as f64 / n)
    }

    /// Encodes every message with isml into `buf` (cleared per message).
    pub fn isml_encode(&self, buf: &mut Vec<u8>) -> usize {
        match self.kind {
            Kind::Telemetry => loops::isml_encode(&self.telemetry, buf),
            Kind::LogRecord => loops::isml_encode(&self.logs, buf),
            Kind::Station => loops::isml_encode(&self.stations, buf),
            Kind::Config => loops::isml_encode(&self.configs, buf),
        }
    }

    /// Encodes every message with isml into a new vector each (`encode_to_vec`,
    /// what applications call).
    pub fn isml_encode_to_vec(&self) -> usize {
        match self.kind {
            Kind::Telemetry => loops::isml_encode_to_vec(&self.telemetry),
            Kind::LogRecord => loops::isml_encode_to_vec(&self.logs),
            Kind::Station => loops::isml_encode_to_vec(&self.stations),
            Kind::Config => loops::isml_encode_to_vec(&self.configs),
        }
    }

    /// Encodes every message with prost into a new vector each (`encode_to_vec`).
    pub fn pb_encode_to_vec(&self) -> usize {
        match self.kind {
            Kind::Telemetry => loops::pb_encode_to_vec(&self.pb_telemetry),
            Kind::LogRecord => loops::pb_encode_to_vec(&self.pb_logs),
            Kind::Station => loops::pb_encode_to_vec(&self.pb_stations),
            Kind::Config => loops::pb_encode_to_vec(&self.pb_configs),
        }
    }

    /// Encodes every message with prost into `buf` (cleared per message).
    pub fn pb_encode(&self, buf: &mut Vec<u8>) -> usize {
        match self.kind {
            Kind::Telemetry => loops::pb_encode(&self.pb_telemetry, buf),
            Kind::LogRecord => loops::pb_encode(&self.pb_logs, buf),
            Kind::Station => loops::pb_encode(&self.pb_stations, buf),
            Kind::Config => loops::pb_encode(&self.pb_configs, buf),
        }
    }

    /// Decodes every isml encoding into owned messages (`decode_slice`).
    pub fn isml_decode(&self) -> usize {
        let b = &self.isml_bytes;
        match self.kind {
            Kind::Telemetry => loops::isml_decode(b, |m: &bench::Telemetry| m.seq as usize),
            Kind::LogRecord => loops::isml_decode(b, |m: &bench::LogRecord| m.text.len()),
            Kind::Station => loops::isml_decode(b, |m: &bench::Station| m.slots.len()),
            Kind::Config => loops::isml_decode(b, |m: &bench::Config| m.settings.len()),
        }
    }

    /// What `decode_slice` costs before any decoding: every message cloned
    /// (its strings, lists and map allocated and copied, then freed), read
    /// and dropped as the decode rows read and drop theirs. No decoder into
    /// owned messages can be faster than this.
    pub fn decode_floor(&self) -> usize {
        match self.kind {
            Kind::Telemetry => {
                loops::clone_floor(&self.telemetry, |m: &bench::Telemetry| m.seq as usize)
            }
            Kind::LogRecord => loops::clone_floor(&self.logs, |m: &bench::LogRecord| m.text.len()),
            Kind::Station => loops::clone_floor(&self.stations, |m: &bench::Station| m.slots.len()),
            Kind::Config => loops::clone_floor(&self.configs, |m: &bench::Config| m.settings.len()),
        }
    }

    /// Decodes every protobuf encoding into owned messages.
    pub fn pb_decode(&self) -> usize {
        let b = &self.pb_bytes;
        match self.kind {
            Kind::Telemetry => loops::pb_decode(b, |m: &pb::Telemetry| m.seq as usize),
            Kind::LogRecord => loops::pb_decode(b, |m: &pb::LogRecord| m.text.len()),
            Kind::Station => loops::pb_decode(b, |m: &pb::Station| m.slots.len()),
            Kind::Config => loops::pb_decode(b, |m: &pb::Config| m.settings.len()),
        }
    }

    /// Reads every field of every message through lazy views (each field
    /// decoded when its accessor is called).
    pub fn isml_lazy(&self) -> u64 {
        let mut acc = 0u64;
        for b in &self.isml_bytes {
            acc = acc.wrapping_add(
                match self.kind {
                    Kind::Telemetry => lazy_telemetry(b),
                    Kind::LogRecord => lazy_log(b),
                    Kind::Station => lazy_station(b),
                    Kind::Config => lazy_config(b),
                }
                .expect("valid"),
            );
        }
        black_box(acc)
    }

    /// Reads every field of every message through zero-copy views.
    pub fn isml_view(&self) -> u64 {
        let mut acc = 0u64;
        for b in &self.isml_bytes {
            acc = acc.wrapping_add(match self.kind {
                Kind::Telemetry => {
                    let v = bench::Telemetry::view(b).expect("valid");
                    u64::from(v.slot())
                        + u64::from(v.voltage_mv())
                        + v.current_ma() as u64
                        + v.temperature_c() as u64
                        + u64::from(v.charging())
                        + v.energy_wh()
                        + u64::from(v.soc_percent())
                        + u64::from(v.state().to_u32())
                        + u64::from(v.power_w())
                        + u64::from(v.seq())
                        + u64::from(v.fan_on())
                }
                Kind::LogRecord => {
                    let v = bench::LogRecord::view(b).expect("valid");
                    u64::from(v.ts_s())
                        + u64::from(v.ts_ns())
                        + u64::from(v.level())
                        + u64::from(v.line())
                        + (v.host().len() + v.app().len() + v.module().len() + v.text().len())
                            as u64
                        + u64::from(v.pid())
                        + v.seq()
                }
                Kind::Station => {
                    let v = bench::Station::view(b).expect("valid");
                    let mut a = (v.station_id().len() + v.firmware().len()) as u64 + v.uptime_s();
                    for s in v.slots() {
                        a += u64::from(s.index())
                            + u64::from(s.state())
                            + u64::from(s.soc_percent());
                        a += u64::from(s.temperature_c().to_bits());
                        for c in s.cells_mv() {
                            a += u64::from(c);
                        }
                    }
                    for f in v.faults() {
                        a += u64::from(f);
                    }
                    a
                }
                Kind::Config => {
                    let v = bench::Config::view(b).expect("valid");
                    let mut a = v.device().len() as u64;
                    for (k, val) in v.settings().iter() {
                        a += k.len() as u64 + u64::from(val);
                    }
                    a += u64::from(v.limit_ma().unwrap_or(0));
                    a += v.label().map_or(0, str::len) as u64;
                    a += v.offset().unwrap_or(0) as u64;
                    a += u64::from(v.enabled().unwrap_or(false));
                    a
                }
            });
        }
        black_box(acc)
    }
}

fn lazy_telemetry(b: &[u8]) -> Result<u64, isml_runtime::wire::DecodeError> {
    let v = bench::TelemetryLazy::new(b)?;
    Ok(u64::from(v.slot()?)
        + u64::from(v.voltage_mv()?)
        + v.current_ma()? as u64
        + v.temperature_c()? as u64
        + u64::from(v.charging()?)
        + v.energy_wh()?
        + u64::from(v.soc_percent()?)
        + u64::from(v.state()?.to_u32())
        + u64::from(v.power_w()?)
        + u64::from(v.seq()?)
        + u64::from(v.fan_on()?))
}

fn lazy_log(b: &[u8]) -> Result<u64, isml_runtime::wire::DecodeError> {
    let v = bench::LogRecordLazy::new(b)?;
    Ok(u64::from(v.ts_s()?)
        + u64::from(v.ts_ns()?)
        + u64::from(v.level()?)
        + u64::from(v.line()?)
        + (v.host()?.len() + v.app()?.len() + v.module()?.len() + v.text()?.len()) as u64
        + u64::from(v.pid()?)
        + v.seq()?)
}

fn lazy_station(b: &[u8]) -> Result<u64, isml_runtime::wire::DecodeError> {
    let v = bench::StationLazy::new(b)?;
    let mut a = v.station_id()?.len() as u64;
    for s in v.slots()? {
        let s = s?;
        a += u64::from(s.index()?) + u64::from(s.state()?) + u64::from(s.soc_percent()?);
        for c in s.cells_mv()? {
            a += u64::from(c?);
        }
        a += u64::from(s.temperature_c()?.to_bits());
    }
    a += (v.firmware()?.len() as u64) + v.uptime_s()?;
    for f in v.faults()? {
        a += u64::from(f?);
    }
    Ok(a)
}

fn lazy_config(b: &[u8]) -> Result<u64, isml_runtime::wire::DecodeError> {
    let v = bench::ConfigLazy::new(b)?;
    let mut a = v.device()?.len() as u64;
    for e in v.settings()? {
        let (k, val) = e?;
        a += k.len() as u64 + u64::from(val);
    }
    a += u64::from(v.limit_ma()?.unwrap_or(0));
    a += v.label()?.map_or(0, str::len) as u64;
    a += v.offset()?.unwrap_or(0) as u64;
    a += u64::from(v.enabled()?.unwrap_or(false));
    Ok(a)
}

pub mod pubsub;
