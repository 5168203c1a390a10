//! Sets `RINGCAST_COMMIT` for `ringcast_build_info`: the variable of the
//! same name when the build sets it (packagers), else the short git commit
//! of the source tree, else `unknown` (a crates.io source has no git).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=RINGCAST_COMMIT");
    let commit = match std::env::var("RINGCAST_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // Rebuild when HEAD moves: the worktree's HEAD, and the branch
            // it names (a loose ref, or packed-refs).
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
            }
            if let (Some(common), Some(head)) = (
                git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                // Only files that exist: cargo takes a missing one as
                // changed, and would rebuild the crate every time.
                for f in [format!("{common}/{head}"), format!("{common}/packed-refs")] {
                    if std::path::Path::new(&f).exists() {
                        println!("cargo:rerun-if-changed={f}");
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=RINGCAST_COMMIT={commit}");
}
