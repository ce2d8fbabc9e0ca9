//! `octoup-sim image --version V --out DIR`: a `docker build` context for the stand-in of
//! `octopusdeploy/octopusdeploy:V`: this executable as `/octoup-sim`, the shared libraries
//! `ldd` names (each at its own absolute path, and the dynamic loader), an empty `/tmp`
//! and a `Dockerfile` whose ENTRYPOINT is `octoup-sim container --version V`.

use std::path::{Path, PathBuf};

/// Writes the build context; returns what it wrote (for the command's output).
pub(crate) fn write(version: &str, out: &Path) -> Result<Vec<String>, String> {
    if !cfg!(target_os = "linux") {
        return Err(
            "octoup-sim image builds a Linux container image and works only on Linux".into(),
        );
    }
    if !crate::version::is_valid(version) {
        return Err(format!(
            "{version:?} is not an Octopus Server version (YYYY.N.BUILD)"
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let io = |what: &str, p: &Path| {
        let shown = format!("{what} {}", p.display());
        move |e: std::io::Error| format!("{shown}: {e}")
    };
    std::fs::create_dir_all(out).map_err(io("cannot create", out))?;
    let mut wrote = Vec::new();
    let target = out.join("octoup-sim");
    std::fs::copy(&exe, &target).map_err(io("cannot copy the executable to", &target))?;
    wrote.push("/octoup-sim".to_string());
    for lib in libraries(&exe)? {
        let relative = lib.strip_prefix("/").unwrap_or(&lib);
        let dest = out.join(relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        // `copy` follows symlinks: the image gets the library itself under the name asked for.
        std::fs::copy(&lib, &dest).map_err(io("cannot copy", &lib))?;
        wrote.push(lib.display().to_string());
    }
    let tmp = out.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;
    crate::platform::shared_tmp(&tmp).map_err(io("cannot set the mode of", &tmp))?;
    let dockerfile = out.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        format!(
            "FROM scratch\nCOPY . /\nEXPOSE 8080 10943\nENTRYPOINT [\"/octoup-sim\", \"container\", \"--version\", \"{version}\"]\n"
        ),
    )
    .map_err(io("cannot write", &dockerfile))?;
    wrote.push("Dockerfile".into());
    Ok(wrote)
}

/// The absolute paths `ldd` prints for `exe` (`lib => /path (…)` and the loader's `/path (…)`).
fn libraries(exe: &Path) -> Result<Vec<PathBuf>, String> {
    let output = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| format!("cannot run ldd to list the shared libraries: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // A static executable needs no libraries.
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }
}
