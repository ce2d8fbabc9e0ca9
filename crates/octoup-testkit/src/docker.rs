//! Real Docker for the rehearsal tests: the simulator's stand-in for the vendor's image
//! (`octoup-sim image`, built `FROM scratch` from local files: no registry is needed), and
//! what is left on the engine under a rehearsal's label.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::bins::{sim_bin, target_dir};

/// `octoup-sim/octopusdeploy:<version>`, built once per test process and version. Panics
/// with the next step when the engine does not answer (scripts/test starts dockerd).
pub fn sim_image(version: &str) -> String {
    static BUILT: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tag) = built.get(version) {
        return tag.clone();
    }
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match info {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "the rehearsal tests need a running Docker engine (scripts/test installs docker.io and starts dockerd; OCTOUP_SKIP_DOCKER=1 skips the set-up, not these tests): {other:?}"
        ),
    }
    let context = target_dir().join(format!("rehearsal-image-{version}"));
    let _ = std::fs::remove_dir_all(&context);
    let out = Command::new(sim_bin())
        .args(["image", "--version", version, "--out"])
        .arg(&context)
        .output()
        .expect("run octoup-sim image");
    assert!(out.status.success(), "octoup-sim image: {out:?}");
    let tag = format!("octoup-sim/octopusdeploy:{version}");
    let out = Command::new("docker")
        .args(["build", "--quiet", "--tag", &tag])
        .arg(&context)
        .output()
        .expect("run docker build");
    assert!(out.status.success(), "docker build: {out:?}");
    built.insert(version.to_string(), tag.clone());
    tag
}

/// Containers and networks still labelled `octoup.rehearsal=<id>`.
pub fn rehearsal_leftovers(id: &str) -> Vec<String> {
    let filter = format!("label=octoup.rehearsal={id}");
    let mut names = Vec::new();
    for args in [
        vec![
            "ps",
            "--all",
            "--filter",
            &filter,
            "--format",
            "container {{.Names}}",
        ],
        vec![
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "network {{.Name}}",
        ],
    ] {
        let out = Command::new("docker")
            .args(&args)
            .output()
            .expect("run docker");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    names
}
