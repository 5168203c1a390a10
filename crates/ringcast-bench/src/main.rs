//! `ringcast-bench`: the load generator for ringcast and its peers (Redis,
//! NATS, the tokio baseline). `ringcast bench ARGS` runs this binary too.
//! Thin: parse the flags (`cli`), call the library.

mod args;
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let words: Vec<_> = std::env::args_os().skip(1).collect();
    let result = match words.first().and_then(|w| w.to_str()) {
        Some("-V" | "--version") => {
            println!("ringcast-bench {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => cli::run(words),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("ringcast bench: {}", failure.message());
            ExitCode::from(failure.exit_code() as u8)
        }
    }
}
