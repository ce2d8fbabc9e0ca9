//! Where the workspace's binaries are. `env!("CARGO_BIN_EXE_...")` exists only inside the
//! binary's own package, so the kit looks beside the running test binary instead
//! (`target/<profile>/deps/<test>` → `target/<profile>/<bin>`). `cargo test --workspace`
//! builds every binary first; `cargo test -p <package>` builds only that package's, so a
//! binary that is missing, or older than a source file of the crates it is built from, is
//! built here with `cargo build -p <package> --bin <name>` (once per test process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The `octoup` binary (package octoup-cli).
pub fn octoup_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        built(
            "octoup-cli",
            "octoup",
            &["octoup-cli", "octoup", "octoup-sim"],
        )
    })
    .clone()
}

/// The `octoup-sim` binary (package octoup-sim).
pub fn sim_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("octoup-sim", "octoup-sim", &["octoup-sim"]))
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

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            if path.is_dir() {
                newest(&path)
            } else {
                modified(&path)
            }
        })
        .max()
}

/// Whether `bin` is missing or older than a source of `crates` (their `src` and manifest).
fn stale(bin: &Path, crates: &[&str]) -> bool {
    let Some(built) = modified(bin) else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/")
        .to_path_buf();
    crates.iter().any(|c| {
        let dir = root.join(c);
        [newest(&dir.join("src")), modified(&dir.join("Cargo.toml"))]
            .into_iter()
            .flatten()
            .any(|t| t > built)
    })
}

/// `target/<profile>/<name>`, built first when [`stale`].
fn built(package: &str, name: &str, crates: &[&str]) -> PathBuf {
    let profile = profile_dir();
    let bin = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if stale(&bin, crates) {
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
