//! The version this build says it is (`--version`, `/api/v1/health`, the
//! pages' footer): Cargo's version, plus the git commit when it is built
//! from a checkout. A build from a source tarball (no `.git`) has no commit
//! and still builds; `EXAPP_JANITOR_GIT_COMMIT` names one where git cannot
//! (a packager's build from a tarball of a known commit).
//!
//! Sets `EXAPP_JANITOR_VERSION` (`0.1.0 (git 1a2b3c4d5e6f)` or `0.1.0`) and,
//! with a commit, `EXAPP_JANITOR_COMMIT`.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT_ENV: &str = "EXAPP_JANITOR_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // sqlx::migrate! embeds the migrations: a new one must rebuild the crate
    // (a build script that names no path of its own would hide it).
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed={COMMIT_ENV}");
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = std::env::var(COMMIT_ENV)
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(|| git_commit(&manifest_dir));
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    match commit {
        Some(commit) => {
            println!("cargo:rustc-env=EXAPP_JANITOR_COMMIT={commit}");
            println!("cargo:rustc-env=EXAPP_JANITOR_VERSION={version} (git {commit})");
        }
        None => println!("cargo:rustc-env=EXAPP_JANITOR_VERSION={version}"),
    }
}

/// The checked-out commit (12 hex digits), when `dir` is the top of a git
/// work tree and git is installed; and tells Cargo which files to watch, so
/// that a new commit rebuilds with its ID and nothing else does.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
        (output.status.success() && !text.is_empty()).then_some(text)
    };
    // A tarball unpacked inside some other repository is not a checkout of
    // this one: its commit would be the other repository's.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let watch = |name: &str| {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    };
    // This work tree's own files only: another work tree's commits
    // (`git worktree`) must not rebuild this one. HEAD names the branch
    // (or, detached, the commit); its reflog grows with every commit,
    // checkout and reset here, even one that turns a packed ref into a
    // file of its own.
    watch("HEAD");
    watch("logs/HEAD");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&branch);
        watch("packed-refs");
    }
    Some(commit)
}
