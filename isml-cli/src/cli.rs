//! Command-line syntax (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  isml check schemas/charging.isml
  isml fmt --check schemas/*.isml
  isml gen -I schemas schemas/charging.isml --out src/generated
  echo '{\"station_id\": \"cab-17\"}' | isml encode --schema schemas/charging.isml --message StatusReport --hex
  isml encode --schema schemas/charging.isml --message StatusReport --hex < report.json \\
    | isml decode --schema schemas/charging.isml --message StatusReport --hex
  isml compat old/charging.isml schemas/charging.isml
  isml describe schemas/charging.isml --mtu 64
  isml completions bash > /etc/bash_completion.d/isml
  isml serve -I schemas schemas/charging.isml --listen tcp://0.0.0.0:7000
  isml sub --url tcp://127.0.0.1:7000 -I schemas schemas/charging.isml --channel charging.v1.telemetry
  isml pub --url tcp://127.0.0.1:7000 -I schemas schemas/charging.isml \\
    --channel charging.v1.telemetry --json '{\"station_id\": \"cab-17\"}'

Exit codes:
  0  success
  1  a check failed (check, compat, fmt --check) or the input data is invalid
  2  usage error (bad arguments, unknown message name) or I/O error";

/// Tools for isml schemas and messages.
#[derive(Debug, Parser)]
#[command(name = "isml", version, about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check schemas and report every error, as build scripts do.
    #[command(
        after_help = "Examples:\n  isml check schemas/charging.isml\n  isml check -I schemas --format json a.isml b.isml"
    )]
    Check(CheckArgs),
    /// Format schemas in place (comments and doc comments are kept).
    #[command(
        after_help = "Examples:\n  isml fmt schemas/*.isml\n  isml fmt --check schemas/*.isml   # CI: exit 1 if a file would change\n  isml fmt - < in.isml > out.isml     # stdin to stdout"
    )]
    Fmt(FmtArgs),
    /// Generate the Rust code the build API writes.
    #[command(
        after_help = "Example:\n  isml gen -I schemas schemas/charging.isml --out src/generated"
    )]
    Gen(GenArgs),
    /// Encode a message from JSON (stdin) to bytes (stdout).
    #[command(
        after_help = "Examples:\n  isml encode --schema schemas/charging.isml --message StatusReport --hex < report.json\n  isml encode --schema schemas/charging.isml --message charging.v1.StartCharging \\\n      --frame --kind request --correlation 7 > frame.bin"
    )]
    Encode(EncodeArgs),
    /// Decode bytes (stdin) to JSON (stdout): a message payload or stream frames.
    #[command(
        after_help = "Examples:\n  isml decode --schema schemas/charging.isml --message StatusReport --hex <<< '0b0d...'\n  isml decode --schema schemas/charging.isml --frame < capture.bin"
    )]
    Decode(DecodeArgs),
    /// List every breaking change between two versions of a schema.
    #[command(
        after_help = "Examples:\n  isml compat -I old old/charging.isml schemas/charging.isml\n  isml compat --allow-bounds old/charging.isml schemas/charging.isml   # bound changes only warn"
    )]
    Compat(CompatArgs),
    /// Table of messages: ids, fingerprints and encoded sizes; or, with
    /// --remote, what a running peer serves.
    #[command(
        after_help = "Examples:\n  isml describe schemas/charging.isml --mtu 64\n  isml describe --remote tcp://127.0.0.1:7000 --token demo-token"
    )]
    Describe(DescribeArgs),
    /// Run a broker for every channel of the schemas (as mosquitto is for MQTT).
    #[command(
        after_help = "Examples:\n  isml serve -I schemas schemas/charging.isml --listen tcp://0.0.0.0:7000\n  isml serve schemas/charging.isml --cluster nats://127.0.0.1:4222 --node-id a   # one node of a fleet\n  isml serve schemas/charging.isml --listen tls://0.0.0.0:7443 --tls-cert cert.pem --tls-key key.pem \\\n      --data-dir /var/lib/isml --acl acl.toml\n  RUST_LOG=debug isml serve schemas/charging.isml   # or -v, -vv"
    )]
    Serve(ServeArgs),
    /// Publish JSON values to a channel of a running server (as mosquitto_pub).
    #[command(
        after_help = "Examples:\n  isml pub --url tcp://127.0.0.1:7000 -I schemas schemas/charging.isml \\\n      --channel charging.v1.telemetry --json '{\"station_id\": \"cab-17\"}'\n  isml pub ... --channel charging.v1.variables --key door < values.jsonl   # one JSON value a line\n  isml pub ... --channel charging.v1.variables --key door --retain-delete"
    )]
    Pub(PubArgs),
    /// Print the publications of a channel as JSON lines (as mosquitto_sub).
    #[command(
        after_help = "Examples:\n  isml sub --url tcp://127.0.0.1:7000 -I schemas schemas/charging.isml --channel charging.v1.telemetry\n  isml sub ... --channel charging.v1.variables --key door --count 1\n\nEach line: {\"value\": {...}, \"key\": \"door\", \"publisher\": \"cab-17\", \"timestamp_ms\": 1764670000000, \"retained\": true}"
    )]
    Sub(SubArgs),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  isml completions zsh > ~/.zfunc/_isml")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Directories searched for imports.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct Includes {
    /// Directory searched for imports (after the importing file's own); repeatable.
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    pub(crate) dirs: Vec<PathBuf>,
}

/// Output format of `isml check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// Rendered like rustc.
    Human,
    /// A JSON array of diagnostics, for editors and CI.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    pub(crate) format: CheckFormat,
    /// Schema files, compiled together.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct FmtArgs {
    /// Change nothing; exit 1 and name the files that would change.
    #[arg(long)]
    pub(crate) check: bool,
    /// Schema files to format in place (`-`: stdin to stdout).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// Schema files, compiled together.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Directory that receives one `<package>.rs` per package.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// Kinds of frame `isml encode --frame` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncodeKind {
    /// A message that expects no reply.
    OneWay,
    /// A request (needs --correlation).
    Request,
    /// A response (needs --correlation).
    Response,
    /// A stream item (needs --correlation).
    StreamItem,
}

#[derive(Debug, Args)]
pub(crate) struct EncodeArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// The schema file.
    #[arg(long, value_name = "FILE")]
    pub(crate) schema: PathBuf,
    /// The message or union: its simple name when unique, or package-qualified.
    #[arg(long, value_name = "NAME")]
    pub(crate) message: String,
    /// Wrap the payload in a stream frame (length prefix and header).
    #[arg(long)]
    pub(crate) frame: bool,
    /// Frame kind (with --frame).
    #[arg(long, value_enum, default_value_t = EncodeKind::OneWay, requires = "frame")]
    pub(crate) kind: EncodeKind,
    /// Correlation id (with --frame, for requests, responses and stream items).
    #[arg(long, value_name = "N", requires = "frame")]
    pub(crate) correlation: Option<u64>,
    /// Sequence number (with --frame).
    #[arg(long, value_name = "N", requires = "frame")]
    pub(crate) seq: Option<u64>,
    /// Print lowercase hex instead of raw bytes.
    #[arg(long)]
    pub(crate) hex: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["message", "frame"]))]
pub(crate) struct DecodeArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// The schema file.
    #[arg(long, value_name = "FILE")]
    pub(crate) schema: PathBuf,
    /// Decode one payload of this message or union.
    #[arg(long, value_name = "NAME")]
    pub(crate) message: Option<String>,
    /// Decode stream frames (length-prefixed); the header picks the type, and
    /// fragmented messages (MORE flag) are joined before they are decoded.
    #[arg(long)]
    pub(crate) frame: bool,
    /// The input is hex text (whitespace allowed) instead of raw bytes.
    #[arg(long)]
    pub(crate) hex: bool,
    /// Indent the JSON output.
    #[arg(long)]
    pub(crate) pretty: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompatArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// The old version.
    #[arg(value_name = "OLD")]
    pub(crate) old: PathBuf,
    /// The new version.
    #[arg(value_name = "NEW")]
    pub(crate) new: PathBuf,
    /// Report changes of `max_len` and `range` as warnings, not breaking
    /// changes: tightening a bound breaks old writers and loosening one
    /// breaks old readers, which a staged rollout may accept.
    #[arg(long)]
    pub(crate) allow_bounds: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// The schema file.
    #[arg(value_name = "FILE", required_unless_present = "remote")]
    pub(crate) file: Option<PathBuf>,
    /// Flag (`!`) messages whose largest stream frame exceeds N bytes.
    #[arg(long, value_name = "N")]
    pub(crate) mtu: Option<u64>,
    /// Ask a running peer instead (tcp://, tls://, ws://): its services,
    /// their methods and fingerprints, and the `.isml` text of their types.
    #[arg(long, value_name = "URL", conflicts_with_all = ["file", "mtu"])]
    pub(crate) remote: Option<String>,
    /// Bearer token for --remote.
    #[arg(long, value_name = "TOKEN", requires = "remote")]
    pub(crate) token: Option<String>,
    /// Device id to claim for --remote (default: let the server assign one).
    #[arg(long, value_name = "ID", requires = "remote")]
    pub(crate) device_id: Option<String>,
    /// Seconds to wait for --remote.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "remote"
    )]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// Schema files; every message type and channel in them is served.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Listener URL (`tcp://HOST:PORT`, `tls://HOST:PORT`, and for text-protocol
    /// devices `text+tcp://HOST:PORT`, `text+tls://HOST:PORT`, with options such as
    /// `?time=on&require_id=on`, see docs/text-protocol.md); repeatable.
    #[arg(long, value_name = "URL", default_value = "tcp://0.0.0.0:7000")]
    pub(crate) listen: Vec<String>,
    /// Maps a text variable to a typed channel (`telemetry=charging.v1.telemetry`):
    /// text devices publish and receive its values as JSON; repeatable.
    #[arg(long = "text-map", value_name = "VARIABLE=CHANNEL")]
    pub(crate) text_map: Vec<String>,
    /// Keep-alive interval of binary and text sessions (`5s`, `500ms`, `2m`; `0`
    /// turns it off). Default 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) keepalive: Option<std::time::Duration>,
    /// New connections accepted per second from one address, and at once
    /// after a quiet spell (`PER_SECOND/BURST`, or `off`). A fleet behind one
    /// NAT reconnecting after an outage needs room here.
    #[arg(long, value_name = "RATE", default_value = "100/200", value_parser = parse_rate)]
    pub(crate) handshake_rate: HandshakeRate,
    /// PEM certificate chain for `tls://` listeners.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for `tls://` listeners.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Where retained values are kept (created if missing).
    #[arg(long, value_name = "DIR", default_value = "./isml-data")]
    pub(crate) data_dir: PathBuf,
    /// Serves the HTTP/WebSocket gateway (REST API, OpenAPI, /metrics and the
    /// dashboard at `/`) on this address, e.g. `0.0.0.0:8080` (see
    /// docs/gateway.md).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    /// Serves the gateway over HTTPS with --tls-cert and --tls-key.
    #[arg(long, requires = "http", requires = "tls_cert")]
    pub(crate) http_tls: bool,
    /// HTTP connections open at once (WebSockets and streams included);
    /// beyond it newcomers wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub(crate) http_max_connections: usize,
    /// The largest HTTP request body, in bytes; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    pub(crate) http_body_limit: usize,
    /// The longest an HTTP request may take before its answer starts
    /// (`30s`, `500ms`); the bound of call deadlines too.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub(crate) http_timeout: std::time::Duration,
    /// Tokens and users allowed to connect (TOML, see docs/gateway.md),
    /// checked for devices and for HTTP clients alike; without it everyone
    /// is let in.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth: Option<PathBuf>,
    /// Access rules (TOML, see docs/pubsub.md); without it every
    /// authenticated session may do everything.
    #[arg(long, value_name = "FILE")]
    pub(crate) acl: Option<PathBuf>,
    /// More logging: -v info for every session (the default), -vv debug,
    /// -vvv trace. `RUST_LOG` overrides it.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Log only warnings and errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

/// `isml serve` as one node of a cluster (see docs/cluster.md).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ClusterArgs {
    /// Join the cluster of the NATS server(s) at URL (`nats://HOST:4222`,
    /// JetStream on; several comma-separated): publications, retained
    /// values and presence are shared with the other nodes.
    #[arg(long = "cluster", value_name = "URL")]
    pub(crate) url: Option<String>,
    /// This node's id in the cluster (ASCII letters, digits, `_`, `-`;
    /// default: a random one).
    #[arg(long, value_name = "ID", requires = "url")]
    pub(crate) node_id: Option<String>,
    /// How long a node's lease lasts: the devices of a node that died are
    /// forgotten after about twice this (`10s` by default).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "url")]
    pub(crate) cluster_lease: Option<std::time::Duration>,
}

/// How `isml pub` and `isml sub` reach a server.
#[derive(Debug, Args, Clone)]
pub(crate) struct Connection {
    /// The server (`tcp://HOST:PORT`, `tls://HOST:PORT`).
    #[arg(long, value_name = "URL", default_value = "tcp://127.0.0.1:7000")]
    pub(crate) url: String,
    /// The device id to present (default: the server assigns one).
    #[arg(long, value_name = "ID")]
    pub(crate) device_id: Option<String>,
    /// A bearer token to present.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// PEM CA certificate(s) trusted for `tls://` servers.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// Schema files (the same the server serves).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The channel: its full name (`charging.v1.telemetry`), or its simple
    /// name when only one package has it.
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: String,
    /// The key (required on keyed channels, refused on others).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Delete the retained value (of --key) instead of publishing.
    #[arg(long, conflicts_with = "json")]
    pub(crate) retain_delete: bool,
    /// The value as JSON; without it, one JSON value per line of stdin.
    #[arg(long, value_name = "JSON")]
    pub(crate) json: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) includes: Includes,
    /// Schema files (the same the server serves).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The channel: its full name, or its simple name when unique.
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: String,
    /// Only this key (keyed channels).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Exit after N publications (retained ones included).
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

/// `isml serve --handshake-rate`: `(per second, burst)`, or `None` for off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandshakeRate(pub(crate) Option<(u32, u32)>);

/// `PER_SECOND/BURST`, `PER_SECOND` (the burst twice that), or `off`.
fn parse_rate(text: &str) -> Result<HandshakeRate, String> {
    if text == "off" {
        return Ok(HandshakeRate(None));
    }
    let number = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("`{text}`: expected PER_SECOND/BURST (whole numbers above 0) or off")
            })
    };
    let (rate, burst) = match text.split_once('/') {
        Some((r, b)) => (number(r)?, number(b)?),
        None => {
            let r = number(text)?;
            (r, r.saturating_mul(2))
        }
    };
    Ok(HandshakeRate(Some((rate, burst))))
}

/// `500ms`, `5s`, `2m`, `1h`, or `0`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: give a unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a whole number before the unit"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    }
    .ok_or_else(|| format!("`{text}`: too long"))?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn rates() {
        use super::HandshakeRate as R;
        assert_eq!(super::parse_rate("off"), Ok(R(None)));
        assert_eq!(super::parse_rate("20/40"), Ok(R(Some((20, 40)))));
        assert_eq!(super::parse_rate("5"), Ok(R(Some((5, 10)))));
        assert!(super::parse_rate("0/1").is_err());
        assert!(super::parse_rate("fast").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
