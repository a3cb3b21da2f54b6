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
