//! `ringcast-bench`: the load generator for ringcast and its peers (Redis,
//! NATS, the tokio baseline). `ringcast bench ARGS` runs this binary too.
//! Thin: parse the flags (`cli`), call the library.

mod cli;

use std::process::ExitCode;

use cli::Failure;

fn main() -> ExitCode {
    cli::forget_empty_env();
    let invocation = match cli::parse(std::env::args_os()) {
        Ok(invocation) => invocation,
        // Help and --version too: printed to stdout, exit 0.
        Err(e) => e.exit(),
    };
    match cli::run(invocation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => e.exit(),
        Err(Failure::Failed(message)) => {
            eprintln!("ringcast bench: {message}");
            ExitCode::FAILURE
        }
    }
}
