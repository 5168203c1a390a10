//! The `ringcast` binary: `serve` runs the daemon, `sub` and `pub` are small
//! clients for trying it out and scripting. Thin by design: each subcommand
//! parses its flags (hand-rolled, see `ringcast/args.rs`) and calls the library.

// The crate root is this file, so its modules would be looked up next to it;
// they live in `ringcast/` to keep `src/bin/` to one entry per binary.
#[path = "ringcast/args.rs"]
mod args;
#[path = "ringcast/connect.rs"]
mod connect;
#[path = "ringcast/publish.rs"]
mod publish;
#[path = "ringcast/serve.rs"]
mod serve;
#[path = "ringcast/sub.rs"]
mod sub;

use std::ffi::OsString;
use std::process::ExitCode;

use args::Failure;

/// One subcommand.
struct Command {
    name: &'static str,
    /// One line for `ringcast --help`.
    summary: &'static str,
    /// The text of `ringcast NAME --help`.
    help: fn() -> String,
    /// Runs it with the words after its name.
    run: fn(Vec<OsString>) -> Result<(), Failure>,
}

/// Every subcommand. To add one (the `bench` load generator is next), write a
/// module with `help()` and `run()` and add its entry here: dispatch,
/// `ringcast --help` and `ringcast help NAME` pick it up.
const COMMANDS: &[Command] = &[
    Command {
        name: "serve",
        summary: "Run the broadcast daemon in the foreground.",
        help: serve::help,
        run: serve::run,
    },
    Command {
        name: "sub",
        summary: "Subscribe to topics and print each message as it arrives.",
        help: sub::help,
        run: sub::run,
    },
    Command {
        name: "pub",
        summary: "Publish a message, or each line of stdin, to a topic.",
        help: publish::help,
        run: publish::run,
    },
    Command {
        name: "bench",
        summary: "Generate load (steady or burst) against ringcast, Redis or NATS; report latency.",
        help: bench_help,
        run: bench_run,
    },
];

/// The load generator is its own binary (`ringcast-bench`, from the
/// `ringcast-bench` crate), so its dependencies stay out of the daemon:
/// `ringcast bench ARGS` runs the `ringcast-bench` installed beside this one.
fn bench_binary() -> Result<std::path::PathBuf, Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot locate this executable: {e}")))?;
    let path = me.with_file_name("ringcast-bench");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Failure::Failed(format!(
            "`ringcast bench` runs {}, which is not there: build it with              `cargo build --release -p ringcast-bench` (or install it beside ringcast)",
            path.display()
        )))
    }
}

fn bench_help() -> String {
    match bench_binary().and_then(|bin| {
        let out = std::process::Command::new(&bin)
            .arg("--help")
            .output()
            .map_err(|e| Failure::Failed(format!("{}: {e}", bin.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }) {
        Ok(text) => text,
        Err(f) => format!(
            "ringcast bench: the load generator (the ringcast-bench binary).\n{}\n",
            f.message()
        ),
    }
}

fn bench_run(words: Vec<OsString>) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let bin = bench_binary()?;
    // exec: the generator takes this process's place (and its PID).
    let err = std::process::Command::new(&bin).args(words).exec();
    Err(Failure::Failed(format!(
        "cannot run {}: {err}",
        bin.display()
    )))
}

fn help() -> String {
    let mut commands = String::new();
    for c in COMMANDS {
        commands.push_str(&format!("  {:<7}{}\n", c.name, c.summary));
    }
    format!(
        "ringcast {}: a thread-per-core io_uring broadcast daemon, and clients for it.\n\
         \n\
         Usage: ringcast COMMAND [ARGS]\n\
         \n\
         Commands:\n\
         {commands}\
         \n\
         Options:\n  \
           -h, --help     Print this help; `ringcast COMMAND --help` lists a command's flags.\n  \
           -V, --version  Print the version.\n\
         \n\
         Every flag also reads an environment variable (each command's help names it);\n\
         a flag beats its variable, which beats the default.\n\
         \n\
         Examples:\n  \
           ringcast serve --cores 4 --max-backlog 16MiB\n  \
           ringcast sub prices.eurusd --count 10\n  \
           ringcast pub prices.eurusd 1.0842\n  \
           seq 1 1000 | ringcast pub numbers\n\
         \n\
         Exit codes: 0 success, 1 failure (the message says why), 2 bad usage.\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn find(name: &OsString) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| name == c.name)
}

fn unknown_command(name: &OsString) -> Failure {
    Failure::Usage(format!(
        "unknown command {:?}; see `ringcast --help`",
        name.to_string_lossy()
    ))
}

fn dispatch(mut words: Vec<OsString>) -> Result<(), Failure> {
    if words.is_empty() {
        eprint!("{}", help());
        return Err(Failure::Usage("no command given".into()));
    }
    let first = words.remove(0);
    match first.to_str() {
        Some("-h" | "--help") => {
            print!("{}", help());
            Ok(())
        }
        Some("-V" | "--version") => {
            println!("ringcast {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("help") => match words.first() {
            None => {
                print!("{}", help());
                Ok(())
            }
            Some(name) => {
                let command = find(name).ok_or_else(|| unknown_command(name))?;
                print!("{}", (command.help)());
                Ok(())
            }
        },
        _ => {
            let command = find(&first).ok_or_else(|| unknown_command(&first))?;
            (command.run)(words)
        }
    }
}

fn main() -> ExitCode {
    match dispatch(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("ringcast: {}", failure.message());
            ExitCode::from(failure.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> Result<(), Failure> {
        dispatch(words.iter().map(OsString::from).collect())
    }

    #[test]
    fn unknown_commands_and_flags_are_usage_errors() {
        let err = run(&["frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("see `ringcast --help`"), "{err:?}");
        assert_eq!(run(&["serve", "--frobnicate"]).unwrap_err().exit_code(), 2);
        assert_eq!(run(&["sub"]).unwrap_err().exit_code(), 2);
        assert_eq!(run(&["sub", "bad topic"]).unwrap_err().exit_code(), 2);
        assert_eq!(run(&["pub"]).unwrap_err().exit_code(), 2);
        assert_eq!(run(&["pub", "t", "a", "b"]).unwrap_err().exit_code(), 2);
        assert_eq!(run(&[]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn help_lists_every_command() {
        let text = help();
        for c in COMMANDS {
            assert!(text.contains(c.name));
            if c.name != "bench" {
                assert!((c.help)().contains(&format!("ringcast {}", c.name)));
            }
        }
        assert!(text.contains("bench"));
    }
}
