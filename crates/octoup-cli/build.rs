//! Names the build for `--version`: `0.1.0 (abc1234 2026-12-02)`, the commit and its date
//! from git, or `unknown` outside a git checkout (a source tarball, no git installed).
//! Re-runs only when the checked-out commit changes: `HEAD` in the git directory (in a
//! worktree `.git` is a file naming it), the branch it points to, and `packed-refs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let build = describe(&dir).unwrap_or_else(|| "unknown".into());
    println!(
        "cargo:rustc-env=OCTOUP_VERSION={} ({build})",
        std::env::var("CARGO_PKG_VERSION").expect("set by cargo")
    );
}

/// `abc1234 2026-12-02`, when this crate is in a git checkout and git runs.
fn describe(dir: &Path) -> Option<String> {
    for path in watched(dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // This crate's own files must be tracked: a tarball unpacked inside some other
    // repository must not take that repository's commit.
    git(dir, &["ls-files", "--error-unmatch", "build.rs"])?;
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    let date = git(dir, &["log", "-1", "--format=%cs", "HEAD"])?;
    Some(format!("{commit} {date}"))
}

/// The files whose change means another commit is checked out.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { dir.join(p) }
    };
    let (Some(git_dir), Some(common)) = (
        git(dir, &["rev-parse", "--git-dir"]).map(absolute),
        git(dir, &["rev-parse", "--git-common-dir"]).map(absolute),
    ) else {
        return Vec::new();
    };
    let head = git_dir.join("HEAD");
    let mut paths = vec![head.clone(), common.join("packed-refs")];
    if let Some(branch) = std::fs::read_to_string(&head)
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        paths.push(common.join(branch));
    }
    paths.retain(|p| p.exists());
    paths
}

/// git's trimmed stdout, or None when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
