//! `serve`'s log flags and the `tracing` subscriber they install: lines on
//! stderr, human-readable (the default) or JSON (one object per line, for
//! log shippers), filtered by `--log-level`, else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable: time, level, message, then the fields as key=value.
    Text,
    /// One JSON object per line: timestamp, level, message and every field
    /// (event, core, conn, peer, front, ...) at the top level.
    Json,
}

/// The log flags of `serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log line format on stderr: text (human-readable) or json (one object
    /// per line, for log shippers).
    #[arg(long, env = "RINGCAST_LOG_FORMAT", value_name = "FORMAT",
          value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which log lines to write: a level (error, warn, info, debug, trace) or
    /// RUST_LOG-style directives like warn,ringcast=info (default: RUST_LOG
    /// when set, else info).
    #[arg(long, env = "RINGCAST_LOG_LEVEL", value_name = "FILTER",
          value_parser = filter)]
    pub log_level: Option<String>,
}

/// Checks a filter the way it will be used.
fn filter(s: &str) -> Result<String, String> {
    EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("expected a level (error, warn, info, debug, trace) or directives like warn,ringcast=info: {e}"))
}

/// Installs the subscriber for the rest of the process.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = match (&args.log_level, std::env::var("RUST_LOG")) {
        (Some(f), _) => EnvFilter::try_new(f).map_err(|e| format!("--log-level {f}: {e}"))?,
        (None, Ok(f)) if !f.is_empty() => {
            EnvFilter::try_new(&f).map_err(|e| format!("RUST_LOG={f}: {e}"))?
        }
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}
