//! The `ringcast` binary: `serve` runs the daemon, `sub` and `pub` are small
//! clients for trying it out and scripting, `bench` runs the load generator.
//! Thin by design: clap parses the command line (each subcommand declares its
//! flags, their `RINGCAST_*` variables and defaults beside the code that
//! uses them) and the library does the work.

// The crate root is this file, so its modules would be looked up next to it;
// they live in `ringcast/` to keep `src/bin/` to one entry per binary.
#[path = "ringcast/connect.rs"]
mod connect;
#[path = "ringcast/logging.rs"]
mod logging;
#[path = "ringcast/publish.rs"]
mod publish;
#[path = "ringcast/serve.rs"]
mod serve;
#[path = "ringcast/sub.rs"]
mod sub;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Why a command stops early.
#[derive(Debug)]
pub enum Failure {
    /// clap's report, printed as clap renders it: bad usage or a bad value
    /// (exit 2, on stderr), or the text of `--help` or `--version` (exit 0,
    /// on stdout).
    Usage(clap::Error),
    /// The command ran and failed: `main` prints `ringcast: MESSAGE` and exits 1.
    Failed(String),
    /// Exit at once with this code (what happened was logged): `serve`
    /// stopped by a second signal.
    Exit(u8),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(e) => e.exit_code(),
            Failure::Failed(_) => 1,
            Failure::Exit(code) => i32::from(*code),
        }
    }
}

const TEMPLATE: &str = "\
{name} {version}: {about}

{usage-heading} {usage}

{all-args}{after-help}";

const AFTER_HELP: &str = "\
`ringcast COMMAND --help` (or `ringcast help COMMAND`) lists a command's flags.
Every flag also reads an environment variable (each command's help names it);
a flag beats its variable, which beats the default, and an empty variable
counts as unset.

Examples:
  ringcast serve --cores 4 --max-backlog 16MiB
  ringcast sub prices.eurusd --count 10
  ringcast pub prices.eurusd 1.0842
  seq 1 1000 | ringcast pub numbers
  ringcast bench --help

Exit codes: 0 success, 1 failure (the message says why), 2 bad usage;
`serve` exits 130 or 143 when a second SIGINT or SIGTERM cuts its graceful
shutdown short (see `ringcast serve --help`).";

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "ringcast",
    version,
    about = "a thread-per-core io_uring broadcast daemon, and clients for it.",
    help_template = TEMPLATE,
    after_help = AFTER_HELP,
    subcommand_value_name = "COMMAND",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand; clap lists them in `ringcast --help` (each one's
/// `about` is on its arguments' struct) and adds `help NAME`.
#[derive(Subcommand, Debug)]
// Made once per process: the size of `serve`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    Serve(serve::ServeArgs),
    Sub(sub::SubArgs),
    #[command(name = "pub")]
    Pub(publish::PubArgs),
    Bench(BenchArgs),
}

/// `ringcast bench ARGS`: every word goes to `ringcast-bench`, `--help` too.
#[derive(clap::Args, Debug)]
#[command(
    about = "Generate load (steady or burst) against ringcast, Redis or NATS; report latency.",
    disable_help_flag = true
)]
struct BenchArgs {
    /// The arguments of ringcast-bench: `ringcast bench --help` lists them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// The whole command line interface, as clap sees it. Variables' values are
/// kept out of help (`[env: NAME]`): some are tokens.
fn command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| sub.mut_args(|arg| arg.hide_env_values(true)))
}

/// Parses a command line (`argv[0]` first).
fn parse(argv: Vec<OsString>) -> Result<Cli, Failure> {
    let mut cmd = command();
    let parsed = cmd
        .try_get_matches_from_mut(&argv)
        .and_then(|matches| Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd)));
    parsed.map_err(|e| Failure::Usage(explain(e, &mut cmd, &argv)))
}

/// Makes a usage error more helpful: `-h`/`--help` among a command's words
/// (before `--`) shows its help whatever else is wrong, a bad value read
/// from a variable names the variable, and an extra word after `pub`'s
/// message hints at quoting.
fn explain(mut e: clap::Error, cmd: &mut clap::Command, argv: &[OsString]) -> clap::Error {
    if !e.use_stderr() {
        return e;
    }
    let Some(name) = argv.get(1).filter(|n| *n != "bench") else {
        return e;
    };
    let Some(sub) = cmd.find_subcommand(name) else {
        return e;
    };
    let words = &argv[2..];
    if let Some(help) = words
        .iter()
        .take_while(|w| *w != "--")
        .find(|w| *w == "-h" || *w == "--help")
    {
        let (bin, name, help) = (argv[0].clone(), name.clone(), help.clone());
        if let Err(help) = cmd.try_get_matches_from_mut([bin, name, help]) {
            return help;
        }
        return e;
    }
    let tip = match (e.kind(), e.get(ContextKind::InvalidArg)) {
        (ErrorKind::ValueValidation, Some(ContextValue::String(arg))) => {
            // `arg` is like "--max-frame <BYTES>".
            let long = arg.split(' ').next().unwrap_or_default();
            let given = words.iter().any(|w| {
                let w = w.to_string_lossy();
                w == long || w.starts_with(&format!("{long}="))
            });
            let var = sub
                .get_arguments()
                .find(|a| a.get_long().map(|l| format!("--{l}")).as_deref() == Some(long))
                .and_then(|a| a.get_env())
                .filter(|var| !given && std::env::var_os(var).is_some());
            var.map(|var| {
                format!(
                    "the value comes from the environment variable {}: correct or unset it, \
                     or give {long}",
                    var.to_string_lossy()
                )
            })
        }
        (ErrorKind::UnknownArgument, Some(ContextValue::String(arg)))
            if name == "pub" && !arg.starts_with('-') =>
        {
            Some(
                "pub takes one TOPIC and at most one MESSAGE; quote a message that has spaces"
                    .into(),
            )
        }
        _ => None,
    };
    if let Some(tip) = tip {
        e.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![tip.into()]),
        );
    }
    e
}

/// An empty environment variable counts as unset. clap would hand `""` to
/// the flag's value parser, so `main` removes the variables of this binary's
/// flags that are set but empty before it parses anything.
fn unset_empty_variables(cmd: &clap::Command) {
    for sub in cmd.get_subcommands() {
        for var in sub.get_arguments().filter_map(|a| a.get_env()) {
            if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
                std::env::remove_var(var);
            }
        }
    }
}

/// The load generator is its own binary (`ringcast-bench`, from the
/// `ringcast-bench` crate), so its dependencies stay out of the daemon:
/// `ringcast bench ARGS` runs the `ringcast-bench` installed beside this one.
fn bench_binary() -> Result<PathBuf, Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot locate this executable: {e}")))?;
    let path = me.with_file_name("ringcast-bench");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Failure::Failed(format!(
            "`ringcast bench` runs {}, which is not there: build it with \
             `cargo build --release -p ringcast-bench` (or install it beside ringcast)",
            path.display()
        )))
    }
}

/// `ringcast help bench`: the generator's own help.
fn bench_help() -> String {
    let text = bench_binary().and_then(|bin| {
        let out = std::process::Command::new(&bin)
            .arg("--help")
            .output()
            .map_err(|e| Failure::Failed(format!("{}: {e}", bin.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    });
    match text {
        Ok(text) => text,
        Err(Failure::Failed(why)) => {
            format!("ringcast bench: the load generator (the ringcast-bench binary).\n{why}\n")
        }
        Err(Failure::Usage(e)) => e.to_string(),
        Err(Failure::Exit(_)) => String::new(),
    }
}

/// `ringcast bench ARGS`.
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

/// Runs a command line (`argv[0]` first).
fn dispatch(argv: Vec<OsString>) -> Result<(), Failure> {
    // `ringcast help bench` shows the generator's flags, as `ringcast bench --help` does.
    if argv.len() == 3 && argv[1] == "help" && argv[2] == "bench" {
        print!("{}", bench_help());
        return Ok(());
    }
    match parse(argv)?.command {
        Command::Serve(args) => serve::run(args),
        Command::Sub(args) => sub::run(args),
        Command::Pub(args) => publish::run(args),
        Command::Bench(args) => bench_run(args.args),
    }
}

fn main() -> ExitCode {
    // Before any thread exists: changing the environment is sound then.
    unset_empty_variables(&command());
    match dispatch(std::env::args_os().collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            // Help and version go to stdout, errors to stderr; a closed pipe is fine.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        Err(Failure::Failed(message)) => {
            eprintln!("ringcast: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Runs `f` with exactly `vars` as the process's RINGCAST_* variables
    /// (empty ones removed, as `main` does), then puts the old ones back.
    /// clap reads variables from the process, so tests that parse take
    /// turns through this lock.
    pub fn with_env<R>(vars: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
        static LOCK: Mutex<()> = Mutex::new(());
        let _turn = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        struct Restore(Vec<(OsString, OsString)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                clear();
                for (k, v) in self.0.drain(..) {
                    std::env::set_var(k, v);
                }
            }
        }
        fn clear() {
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("RINGCAST_") {
                    std::env::remove_var(k);
                }
            }
        }
        let saved: Vec<_> = std::env::vars_os()
            .filter(|(k, _)| k.to_string_lossy().starts_with("RINGCAST_"))
            .collect();
        let _restore = Restore(saved);
        clear();
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        unset_empty_variables(&command());
        f()
    }

    /// `ringcast WORDS` parsed with no RINGCAST_* variables.
    fn parse_words(words: &[&str]) -> Result<Cli, Failure> {
        let argv = std::iter::once("ringcast").chain(words.iter().copied());
        with_env(&[], || parse(argv.map(OsString::from).collect()))
    }

    /// The text `ringcast WORDS` prints as help (or version).
    pub fn help_of(words: &[&str]) -> String {
        match parse_words(words) {
            Err(Failure::Usage(e)) if e.exit_code() == 0 => e.to_string(),
            other => panic!("{words:?} printed no help: {other:?}"),
        }
    }

    fn usage_error(words: &[&str]) -> String {
        match parse_words(words) {
            Err(Failure::Usage(e)) if e.exit_code() == 2 => e.to_string(),
            other => panic!("{words:?} is not a usage error: {other:?}"),
        }
    }

    #[test]
    fn unknown_commands_and_flags_are_usage_errors() {
        let msg = usage_error(&["frobnicate"]);
        assert!(
            msg.contains("'frobnicate'") && msg.contains("--help"),
            "{msg}"
        );
        assert!(usage_error(&["serve", "--frobnicate"]).contains("'--frobnicate'"));
        assert!(usage_error(&["sub"]).contains("<TOPIC>"));
        assert!(usage_error(&["sub", "bad topic"]).contains("'bad topic'"));
        assert!(usage_error(&["pub"]).contains("<TOPIC>"));
        let msg = usage_error(&["pub", "t", "a", "b"]);
        assert!(msg.contains("quote a message that has spaces"), "{msg}");
        assert!(usage_error(&["pub", "t", "-5"]).contains("-- -5"));
        assert!(usage_error(&["sub", "t", "--count"]).contains("--count"));
        assert!(usage_error(&["sub", "t", "--count", "x"]).contains("--count <N>"));
        // No command: the help, on stderr, exit 2.
        assert!(usage_error(&[]).contains("Commands:"));
    }

    #[test]
    fn help_lists_every_command_and_version() {
        let text = help_of(&["--help"]);
        assert!(text.starts_with(&format!("ringcast {}: ", env!("CARGO_PKG_VERSION"))));
        assert!(text.contains("Exit codes:"), "{text}");
        let cmd = command();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            assert!(text.contains(&format!("\n  {name} ")), "{name} in {text}");
            if name != "bench" {
                for words in [&[name, "--help"][..], &[name, "-h"], &["help", name]] {
                    let help = help_of(words);
                    assert!(
                        help.contains(&format!("ringcast {name}")),
                        "{words:?}: {help}"
                    );
                }
            }
        }
        assert_eq!(help_of(&["help"]), text);
        usage_error(&["help", "frobnicate"]);
        let version = format!("ringcast {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(help_of(&["--version"]), version);
        assert_eq!(help_of(&["-V"]), version);
    }

    #[test]
    fn help_wins_and_double_dash_ends_the_flags() {
        assert!(help_of(&["serve", "--frobnicate", "--help"]).contains("--max-backlog"));
        assert!(help_of(&["serve", "--cores", "0", "-h"]).contains("--max-backlog"));
        match parse_words(&["pub", "t", "--", "--help"]).unwrap().command {
            Command::Pub(args) => assert!(format!("{args:?}").contains("Some(\"--help\")")),
            other => panic!("{other:?}"),
        }
        match parse_words(&["sub", "a", "--", "-x"]).unwrap().command {
            Command::Sub(args) => assert!(format!("{args:?}").contains("[\"a\", \"-x\"]")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bench_takes_every_word() {
        match parse_words(&["bench", "--help", "--port", "7400", "-x"])
            .unwrap()
            .command
        {
            Command::Bench(b) => assert_eq!(b.args, ["--help", "--port", "7400", "-x"]),
            other => panic!("{other:?}"),
        }
        match parse_words(&["bench"]).unwrap().command {
            Command::Bench(b) => assert!(b.args.is_empty()),
            other => panic!("{other:?}"),
        }
        // Beside the test binary there is no ringcast-bench: a failure that says what to build.
        let beside = std::env::current_exe()
            .unwrap()
            .with_file_name("ringcast-bench");
        if !beside.exists() {
            let err = dispatch(["ringcast", "bench"].map(OsString::from).to_vec()).unwrap_err();
            assert_eq!(err.exit_code(), 1);
            assert!(format!("{err:?}").contains("cargo build --release -p ringcast-bench"));
            assert!(bench_help().contains("ringcast bench: the load generator"));
        }
    }

    #[test]
    fn clients_take_flags_and_variables() {
        let sub = |words: &[&str], env: &[(&str, &str)]| {
            let argv = ["ringcast", "sub"].iter().chain(words);
            match with_env(env, || parse(argv.map(OsString::from).collect())) {
                Ok(Cli {
                    command: Command::Sub(args),
                }) => format!("{args:?}"),
                other => panic!("{other:?}"),
            }
        };
        let d = sub(&["a", "b"], &[]);
        assert!(
            d.contains("127.0.0.1:7400") && d.contains("token: None"),
            "{d}"
        );
        let e = sub(
            &["a"],
            &[("RINGCAST_ADDR", "7500"), ("RINGCAST_SUBSCRIBE_TOKEN", "s")],
        );
        assert!(
            e.contains("127.0.0.1:7500") && e.contains("token: Some([115])"),
            "{e}"
        );
        let f = sub(&["a", "--addr", "7600"], &[("RINGCAST_ADDR", "7500")]);
        assert!(f.contains("127.0.0.1:7600"), "{f}");
        // The publish token is not the subscribe token.
        let g = sub(&["a"], &[("RINGCAST_PUBLISH_TOKEN", "p")]);
        assert!(g.contains("token: None"), "{g}");
    }
}
