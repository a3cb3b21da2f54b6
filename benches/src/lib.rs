//! The same three messages as isml generated types and as prost types, with
//! deterministic sample data, for the benchmarks in `benches/codec.rs` and the
//! comparison table printed by `src/bin/compare.rs`.

/// isml types generated from `schemas/bench.isml`.
pub mod bench {
    isml_runtime::include_schema!("bench");
}

/// prost types equivalent to `schemas/bench.isml` (u8 fields become uint32,
/// signed fields sint32/sint64 so both sides use zigzag).
pub mod pb {
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
        #[prost(float, tag = "4")]
        pub temperature_c: f32,
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
        #[prost(uint32, tag = "8")]
        pub state: u32,
        /// power_w
        #[prost(uint32, tag = "9")]
        pub power_w: u32,
        /// seq
        #[prost(uint32, tag = "10")]
        pub seq: u32,
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
                voltage_mv: 48_000 + (i as u32 * 37) % 900,
                current_ma: -1_500 + (i32v * 13) % 400,
                temperature_c: 21.5 + (i % 10) as f32 * 0.5,
                charging: i % 3 != 0,
                energy_wh: 10_000 + i as u64 * 7,
                soc_percent: (i % 101) as u8,
                state: (i % 4) as u8,
                power_w: 2_400 + (i as u32 * 11) % 300,
                seq: i as u32,
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

impl From<&bench::Telemetry> for pb::Telemetry {
    fn from(t: &bench::Telemetry) -> Self {
        pb::Telemetry {
            slot: t.slot.into(),
            voltage_mv: t.voltage_mv,
            current_ma: t.current_ma,
            temperature_c: t.temperature_c,
            charging: t.charging,
            energy_wh: t.energy_wh,
            soc_percent: t.soc_percent.into(),
            state: t.state.into(),
            power_w: t.power_w,
            seq: t.seq,
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

use isml_runtime::{Message as _, Viewable};
use prost::Message as _;

/// Which of the three messages a [`Workload`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bench.Telemetry`.
    Telemetry,
    /// `bench.LogRecord`.
    LogRecord,
    /// `bench.Station`.
    Station,
}

impl Kind {
    /// All kinds, in table order.
    pub const ALL: [Kind; 3] = [Kind::Telemetry, Kind::LogRecord, Kind::Station];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Telemetry => "telemetry (small scalars)",
            Kind::LogRecord => "log record (4 strings)",
            Kind::Station => "station (nested lists)",
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
    pb_telemetry: Vec<pb::Telemetry>,
    pb_logs: Vec<pb::LogRecord>,
    pb_stations: Vec<pb::Station>,
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
            pb_telemetry: Vec::new(),
            pb_logs: Vec::new(),
            pb_stations: Vec::new(),
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
    pub fn sizes(&self) -> (f64, f64) {
        let n = self.len() as f64;
        let isml: usize = self.isml_bytes.iter().map(Vec::len).sum();
        let pb: usize = self.pb_bytes.iter().map(Vec::len).sum();
        (isml as f64 / n, pb as f64 / n)
    }

    /// Encodes every message with isml into `buf` (cleared per message).
    pub fn isml_encode(&self, buf: &mut Vec<u8>) -> usize {
        let mut total = 0;
        macro_rules! run {
            ($v:expr) => {
                for m in $v {
                    buf.clear();
                    m.encode(buf).expect("valid");
                    total += black_box(&buf).len();
                }
            };
        }
        match self.kind {
            Kind::Telemetry => run!(&self.telemetry),
            Kind::LogRecord => run!(&self.logs),
            Kind::Station => run!(&self.stations),
        }
        total
    }

    /// Encodes every message with prost into `buf` (cleared per message).
    pub fn pb_encode(&self, buf: &mut Vec<u8>) -> usize {
        let mut total = 0;
        macro_rules! run {
            ($v:expr) => {
                for m in $v {
                    buf.clear();
                    m.encode(buf).expect("room");
                    total += black_box(&buf).len();
                }
            };
        }
        match self.kind {
            Kind::Telemetry => run!(&self.pb_telemetry),
            Kind::LogRecord => run!(&self.pb_logs),
            Kind::Station => run!(&self.pb_stations),
        }
        total
    }

    /// Decodes every isml encoding into owned messages.
    pub fn isml_decode(&self) -> usize {
        let mut n = 0;
        for b in &self.isml_bytes {
            n += match self.kind {
                Kind::Telemetry => {
                    black_box(bench::Telemetry::decode_slice(b).expect("valid")).seq as usize
                }
                Kind::LogRecord => black_box(bench::LogRecord::decode_slice(b).expect("valid"))
                    .text
                    .len(),
                Kind::Station => black_box(bench::Station::decode_slice(b).expect("valid"))
                    .slots
                    .len(),
            };
        }
        n
    }

    /// Decodes every protobuf encoding into owned messages.
    pub fn pb_decode(&self) -> usize {
        let mut n = 0;
        for b in &self.pb_bytes {
            n += match self.kind {
                Kind::Telemetry => {
                    black_box(pb::Telemetry::decode(&b[..]).expect("valid")).seq as usize
                }
                Kind::LogRecord => black_box(pb::LogRecord::decode(&b[..]).expect("valid"))
                    .text
                    .len(),
                Kind::Station => black_box(pb::Station::decode(&b[..]).expect("valid"))
                    .slots
                    .len(),
            };
        }
        n
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
                        + u64::from(v.temperature_c().to_bits())
                        + u64::from(v.charging())
                        + v.energy_wh()
                        + u64::from(v.soc_percent())
                        + u64::from(v.state())
                        + u64::from(v.power_w())
                        + u64::from(v.seq())
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
            });
        }
        black_box(acc)
    }
}
