//! Where the workspace's binaries are. `env!("CARGO_BIN_EXE_...")` exists only inside the
//! binary's own package, so the kit looks beside the running test binary instead
//! (`target/<profile>/deps/<test>` → `target/<profile>/<bin>`), and asks cargo to build a
//! binary that is missing there or older than the test (another package's binary is not
//! built by `cargo test -p <package>`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The `octoup` binary (package octoup-cli).
pub fn octoup_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("octoup-cli", "octoup")).clone()
}

/// The `octoup-sim` binary (package octoup-sim).
pub fn sim_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("octoup-sim", "octoup-sim"))
        .clone()
}

/// The cargo target directory (`target/`), for files a test leaves for people to read.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory has a parent")
        .to_path_buf()
}

/// `target/<profile>`: the directory above the test binary's `deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe.parent().expect("the test binary's directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    dir.to_path_buf()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn built(package: &str, name: &str) -> PathBuf {
    let profile = profile_dir();
    let bin = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let test = std::env::current_exe().ok().and_then(|t| modified(&t));
    let stale = match (modified(&bin), test) {
        (None, _) => true,
        (Some(b), Some(t)) => b < t,
        (Some(_), None) => false,
    };
    if stale {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", package, "--bin", name]);
        match profile.file_name().and_then(|p| p.to_str()) {
            Some("debug") | None => {}
            // `target/release` is the release profile, `target/<name>` a custom one.
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
        // Same target directory as the test binary's.
        cargo.env("CARGO_TARGET_DIR", target_dir());
        let status = cargo
            .status()
            .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
        assert!(
            status.success(),
            "cargo build -p {package} --bin {name} failed"
        );
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}
