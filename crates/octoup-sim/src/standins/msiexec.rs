//! `octoup-sim msiexec --dir DIR --node NAME <msiexec arguments>`: installs a simulated
//! installer on one node, with msiexec's exit codes and a verbose log.
//!
//! Exit codes: 0 success, 1602 user cancel (no quiet UI), 1603 fatal error (files in use,
//! corrupt package, downgrade), 1605 not installed (`/x`), 1618 another install running,
//! 1619 package cannot be opened, 1620 not a valid package, 1622 log cannot be opened,
//! 1639 invalid command line.

use std::path::{Path, PathBuf};

use super::{Output, apply_fault, try_lock_file};
use crate::history::Event;
use crate::installer::{self, InstallerError};
use crate::state::{ServiceState, Store, StoreError};
use crate::version;

const PRODUCT: &str = "Octopus Deploy Server";

#[derive(Debug, Default)]
struct Args {
    install: Option<String>,
    uninstall: Option<String>,
    quiet: bool,
    log: Option<PathBuf>,
    properties: Vec<(String, String)>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut i = 0;
    let next = |i: &mut usize, what: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i - 1)
            .cloned()
            .ok_or_else(|| format!("{what} needs a value"))
    };
    while i < args.len() {
        let arg = args[i].clone();
        i += 1;
        let lower = arg.to_ascii_lowercase();
        let switch = lower.strip_prefix('/').or_else(|| lower.strip_prefix('-'));
        match switch {
            Some("i" | "package") => parsed.install = Some(next(&mut i, &arg)?),
            Some("x" | "uninstall") => parsed.uninstall = Some(next(&mut i, &arg)?),
            Some("quiet" | "qn" | "q" | "passive" | "qb" | "qb-" | "qn+") => parsed.quiet = true,
            Some("norestart" | "promptrestart" | "forcerestart") => {}
            Some(s)
                if s == "log"
                    || (s.starts_with('l')
                        && s[1..].chars().all(|c| "iwearucmopvx+!*".contains(c))) =>
            {
                parsed.log = Some(PathBuf::from(next(&mut i, &arg)?));
            }
            Some(_) => return Err(format!("unknown switch {arg}")),
            None => match arg.split_once('=') {
                Some((name, value))
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
                {
                    parsed
                        .properties
                        .push((name.to_string(), value.trim_matches('"').to_string()));
                }
                _ => return Err(format!("unexpected argument {arg}")),
            },
        }
    }
    if parsed.install.is_some() == parsed.uninstall.is_some() {
        return Err("specify exactly one of /i or /x".to_string());
    }
    Ok(parsed)
}

/// A verbose-ish msiexec log, written when `/l*v LOG` was given.
struct Log {
    path: Option<PathBuf>,
    lines: Vec<String>,
}

impl Log {
    fn new(path: Option<PathBuf>) -> Log {
        let now = jiff::Zoned::now()
            .strftime("%-m/%-d/%Y  %H:%M:%S")
            .to_string();
        Log {
            path,
            lines: vec![format!(
                "=== Verbose logging started: {now}  Build type: SHIP UNICODE 5.00.10011.00  Calling process: C:\\Windows\\system32\\msiexec.exe ==="
            )],
        }
    }

    fn line(&mut self, text: impl AsRef<str>) {
        let t = jiff::Zoned::now().strftime("%H:%M:%S:%3f");
        self.lines
            .push(format!("MSI (s) (D8:F4) [{t}]: {}", text.as_ref()));
    }

    fn action(&mut self, action: &str, ret: u32) {
        let t = jiff::Zoned::now().strftime("%H:%M:%S");
        self.lines.push(format!("Action start {t}: {action}."));
        self.lines
            .push(format!("Action ended {t}: {action}. Return value {ret}."));
    }

    /// Writes the log; the final status line names the exit code.
    fn finish(mut self, version: Option<&str>, code: i32) -> Result<(), Output> {
        self.line(format!(
            "Windows Installer {} the product. Product Name: {PRODUCT}. Product Version: {}. Product Language: 1033. Manufacturer: Octopus Deploy Pty. Ltd.. Installation success or error status: {code}.",
            if code == 0 { "installed" } else { "did not install" },
            version.unwrap_or("")
        ));
        let now = jiff::Zoned::now()
            .strftime("%-m/%-d/%Y  %H:%M:%S")
            .to_string();
        self.lines
            .push(format!("=== Verbose logging stopped: {now} ==="));
        if let Some(path) = &self.path {
            let text = self.lines.join("\r\n") + "\r\n";
            std::fs::write(path, text).map_err(|e| {
                Output::fail(
                    1622,
                    format!(
                        "Error opening installation log file {}: {e}. Verify that the specified log file location exists and that you can write to it.",
                        path.display()
                    ),
                )
            })?;
        }
        Ok(())
    }
}

/// Runs one msiexec command line on `node`.
pub fn run(store: &Store, node: &str, args: &[String]) -> Output {
    match run_inner(store, node, args) {
        Ok(out) | Err(out) => out,
    }
}

fn fail(log: Log, version: Option<&str>, code: i32, message: String) -> Result<Output, Output> {
    let mut log = log;
    log.line(format!("Product: {PRODUCT} -- {message}"));
    log.action("InstallFinalize", 3);
    log.finish(version, code)?;
    Err(Output::fail(code, message))
}

fn run_inner(store: &Store, node: &str, args: &[String]) -> Result<Output, Output> {
    let state = store.snapshot()?;
    let spare = state.spare(node).is_some();
    if state.node(node).is_none() && !spare {
        return Err(Output::fail(
            2,
            format!(
                "octoup-sim: no node {node} in this installation (nodes: {})",
                state.node_names().join(", ")
            ),
        ));
    }
    let parsed = parse(args).map_err(|m| {
        Output::fail(
            1639,
            format!("Invalid command line argument ({m}). Consult the Windows Installer SDK for detailed command line help."),
        )
    })?;
    if let Some(log) = &parsed.log
        && log
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        return Err(Output::fail(
            1622,
            format!(
                "Error opening installation log file {}. Verify that the specified log file location exists and that you can write to it.",
                log.display()
            ),
        ));
    }
    let mut log = Log::new(parsed.log.clone());
    log.line(format!("Command line: {}", args.join(" ")));
    if !parsed.quiet {
        return fail(
            log,
            None,
            1602,
            "User cancelled installation. (octoup-sim has no interactive installer UI; pass /quiet.)".to_string(),
        );
    }
    if let Some(code) = apply_fault(store, "msiexec", Some(node))? {
        return fail(
            log,
            None,
            code,
            format!("Error {code}. A fatal error occurred during installation (injected fault)."),
        );
    }
    // Windows Installer runs one installation at a time per machine (node).
    let lock_path = store.dir().join(format!("install-{node}.lock"));
    let Some(_lock) = try_lock_file(&lock_path)? else {
        let message = "Another installation is already in progress. Complete that installation before proceeding with this install.".to_string();
        store.record(Event::InstallFailed {
            node: node.to_string(),
            version: None,
            exit_code: 1618,
            reason: message.clone(),
        })?;
        return fail(log, None, 1618, message);
    };
    if spare {
        return on_spare(store, node, &parsed, log);
    }
    match (&parsed.install, &parsed.uninstall) {
        (Some(file), _) => install(store, node, file, log),
        (None, Some(file)) => uninstall(store, node, file, log),
        (None, None) => unreachable!("parse() requires /i or /x"),
    }
}

/// msiexec's 1619 message when the package is not there.
fn no_package(file: &str) -> Option<String> {
    (!Path::new(file).is_file()).then(|| {
        format!(
            "This installation package could not be opened: {file}. Verify that the package exists and that you can access it."
        )
    })
}

/// On a spare node (outside the installation): the product is installed or removed, with
/// the installer checked as on a node; no service of the installation is involved.
fn on_spare(store: &Store, node: &str, parsed: &Args, mut log: Log) -> Result<Output, Output> {
    let installing = parsed.install.clone();
    let version = match &installing {
        Some(file) => {
            if let Some(message) = no_package(file) {
                return fail(log, None, 1619, message);
            }
            match installer::validate(Path::new(file)) {
                Ok(v) => Some(v),
                Err(e) => {
                    return fail(
                        log,
                        None,
                        1620,
                        format!("This installation package could not be opened. ({e})"),
                    );
                }
            }
        }
        None => None,
    };
    let (clock, secs) = store.read(|s| (s.clock(), s.durations.install))?;
    clock.sleep_sim(secs);
    store.update(|s| {
        if let Some(n) = s.spare_mut(node) {
            n.installed_version = version.clone();
        }
        s.record(Event::SpareNodeInstalled {
            node: node.to_string(),
            version: version.clone(),
        });
        Ok::<_, StoreError>(())
    })?;
    log.action("InstallFinalize", 1);
    log.finish(version.as_deref(), 0)?;
    Ok(Output::ok(""))
}

fn install(store: &Store, node: &str, file: &str, mut log: Log) -> Result<Output, Output> {
    let path = Path::new(file);
    if let Some(message) = no_package(file) {
        return fail(log, None, 1619, message);
    }
    let checked = installer::validate(path);
    let version = checked.as_ref().ok().cloned();
    log.line(format!("Original package ==> {file}"));
    let started = store.update(|s| {
        let Some(n) = s.node(node) else {
            return Ok::<_, StoreError>(Err(String::new()));
        };
        let previous = n.installed_version.clone();
        let service = n.service;
        s.record(Event::InstallStarted {
            node: node.to_string(),
            file: file.to_string(),
            version: version.clone(),
            previous_version: previous.clone(),
        });
        if service != ServiceState::Stopped {
            return Ok(Err(format!(
                "Error 1306. Another application has exclusive access to the file 'C:\\Program Files\\Octopus Deploy\\Octopus\\Octopus.Server.dll'. Please shut down all other applications, then click Retry. (The OctopusDeploy service is {service:?}; stop it first.)"
            )));
        }
        if let (Some(v), Some(p)) = (&version, &previous)
            && version::compare(v, p).is_lt()
        {
            return Ok(Err(format!(
                "A newer version of {PRODUCT} ({p}) is already installed. To install {v}, uninstall the current version first (msiexec /x)."
            )));
        }
        if let Some(n) = s.node_mut(node) {
            n.install_in_progress = true;
        }
        Ok(Ok(previous))
    })?;
    let previous = match started {
        Ok(previous) => previous,
        Err(reason) => return install_failed(store, node, version.as_deref(), 1603, reason, log),
    };
    let clock = store.read(|s| (s.clock(), s.durations.install))?;
    // A corrupt package fails part way, when the damaged cabinet is reached.
    if let Err(e) = &checked {
        clock.0.sleep_sim(clock.1 / 3.0);
        let (code, reason) = match e {
            InstallerError::NotAnInstaller { .. } => (
                1620,
                format!(
                    "This installation package could not be opened. Contact the application vendor to verify that this is a valid Windows Installer package. ({e})"
                ),
            ),
            InstallerError::Io { .. } => (
                1619,
                format!("This installation package could not be opened. ({e})"),
            ),
            _ => (
                1603,
                format!(
                    "Error 1335. The cabinet file 'Octopus.cab' required for this installation is corrupt and cannot be used. This could indicate a network error or a problem with this package. ({e})"
                ),
            ),
        };
        return install_failed(store, node, None, code, reason, log);
    }
    let version = version.unwrap_or_default();
    log.action("CostFinalize", 1);
    clock.0.sleep_sim(clock.1);
    log.action("InstallFiles", 1);
    log.action("InstallFinalize", 1);
    store.update(|s| {
        if let Some(n) = s.node_mut(node) {
            n.installed_version = Some(version.clone());
            n.install_in_progress = false;
        }
        s.record(Event::InstallFinished {
            node: node.to_string(),
            version: version.clone(),
            previous_version: previous.clone(),
            exit_code: 0,
        });
        Ok::<_, StoreError>(())
    })?;
    log.line(format!(
        "Product: {PRODUCT} -- Installation completed successfully."
    ));
    log.finish(Some(&version), 0)?;
    Ok(Output::ok(""))
}

fn install_failed(
    store: &Store,
    node: &str,
    version: Option<&str>,
    code: i32,
    reason: String,
    log: Log,
) -> Result<Output, Output> {
    store.update(|s| {
        if let Some(n) = s.node_mut(node) {
            n.install_in_progress = false;
        }
        s.record(Event::InstallFailed {
            node: node.to_string(),
            version: version.map(str::to_string),
            exit_code: code,
            reason: reason.clone(),
        });
        Ok::<_, StoreError>(())
    })?;
    fail(log, version, code, format!("Installation failed. {reason}"))
}

fn uninstall(store: &Store, node: &str, file: &str, log: Log) -> Result<Output, Output> {
    let result = store.update(|s| {
        let Some(n) = s.node(node) else {
            return Ok::<_, StoreError>(Err((1605, String::new())));
        };
        let Some(installed) = n.installed_version.clone() else {
            return Ok(Err((1605, "This action is only valid for products that are currently installed.".to_string())));
        };
        if n.service != ServiceState::Stopped {
            return Ok(Err((1603, "Error 1306. Another application has exclusive access to the file 'C:\\Program Files\\Octopus Deploy\\Octopus\\Octopus.Server.dll'. (The OctopusDeploy service is running; stop it first.)".to_string())));
        }
        if let Some(n) = s.node_mut(node) {
            n.installed_version = None;
        }
        s.record(Event::UninstallFinished {
            node: node.to_string(),
            version: installed.clone(),
        });
        Ok(Ok(installed))
    })?;
    match result {
        Ok(version) => {
            let clock = store.read(|s| (s.clock(), s.durations.install))?;
            clock.0.sleep_sim(clock.1 / 3.0);
            let mut log = log;
            log.line(format!(
                "Product: {PRODUCT} -- Removal completed successfully. ({file})"
            ));
            log.finish(Some(&version), 0)?;
            Ok(Output::ok(""))
        }
        Err((code, reason)) => fail(log, None, code, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_command_line() {
        let a = parse(&args(&[
            "/i",
            "C:\\x.msi",
            "/quiet",
            "RUNMANAGERONEXIT=no",
            "/norestart",
            "/l*v",
            "C:\\log.txt",
        ]))
        .unwrap();
        assert_eq!(a.install.as_deref(), Some("C:\\x.msi"));
        assert!(a.quiet);
        assert_eq!(a.log, Some(PathBuf::from("C:\\log.txt")));
        assert_eq!(
            a.properties,
            vec![("RUNMANAGERONEXIT".to_string(), "no".to_string())]
        );
        assert!(parse(&args(&["/i", "x.msi", "/bogus"])).is_err());
        assert!(parse(&args(&["/quiet"])).is_err());
        assert!(parse(&args(&["/i"])).is_err());
        assert!(parse(&args(&["/I", "x.msi", "/QN", "/L*V", "l.txt"])).is_ok());
    }
}
