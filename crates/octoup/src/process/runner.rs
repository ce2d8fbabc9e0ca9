//! Running external programs (`Octopus.Server.exe`, `msiexec`, `sqlcmd`): every command has a
//! timeout, its output is captured, and it is written to the run's log — except output marked
//! sensitive (`show-master-key`), which the log shows as `<redacted>`.
//!
//! Secrets never travel on a command line: a [`CommandSpec`] carries them as environment
//! variables (`SQLCMDPASSWORD`), and the log scrubs every secret it was told about.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::Secret;
use crate::process::platform::{self, ProcessId};

/// Told when the child is about to be spawned and then its pid (and start time), so that
/// after a crash recovery can tell "never started" from "started, and still runs (or not)".
/// The engine records both (see `engine::launch`).
#[derive(Clone)]
pub struct SpawnHook {
    launching: Option<Arc<dyn Fn() + Send + Sync>>,
    spawned: Arc<dyn Fn(ProcessId) + Send + Sync>,
}

impl SpawnHook {
    /// Told only the pid.
    pub fn new(f: impl Fn(ProcessId) + Send + Sync + 'static) -> SpawnHook {
        SpawnHook {
            launching: None,
            spawned: Arc::new(f),
        }
    }

    /// Also told right before the spawn (nothing the child does can come earlier).
    pub fn with_launching(mut self, f: impl Fn() + Send + Sync + 'static) -> SpawnHook {
        self.launching = Some(Arc::new(f));
        self
    }

    /// The child is about to be spawned.
    pub fn launching(&self) {
        if let Some(f) = &self.launching {
            f();
        }
    }

    /// The child runs as `process`.
    pub fn spawned(&self, process: ProcessId) {
        (self.spawned)(process);
    }
}

impl std::fmt::Debug for SpawnHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpawnHook")
    }
}

/// Told each line of the child's stdout as it arrives (sqlcmd's `n percent processed.`), so
/// a long command can show progress while it runs.
#[derive(Clone)]
pub struct LineHook(Arc<dyn Fn(&str) + Send + Sync>);

impl LineHook {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> LineHook {
        LineHook(Arc::new(f))
    }

    pub fn line(&self, line: &str) {
        (self.0)(line)
    }
}

impl std::fmt::Debug for LineHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineHook")
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// What the command is for, in words ("stop OCTO-NODE-01"); used in messages and the log.
    pub label: String,
    pub argv: Vec<String>,
    /// Extra environment variables, each a secret (never logged).
    pub env: Vec<(String, Secret)>,
    pub timeout: Duration,
    /// The config key that sets `timeout`, so a timeout message can name it.
    pub timeout_setting: &'static str,
    /// The output is a secret (e.g. the master key): the log shows `<redacted>`.
    pub sensitive_output: bool,
    /// Told of the child's spawn and pid (for a command over SSH: the local `ssh` client's).
    pub on_spawn: Option<SpawnHook>,
    /// Told each stdout line as it arrives.
    pub on_line: Option<LineHook>,
}

impl CommandSpec {
    pub fn new(label: impl Into<String>, argv: Vec<String>, timeout: Duration) -> Self {
        CommandSpec {
            label: label.into(),
            argv,
            env: Vec::new(),
            timeout,
            timeout_setting: "[timeouts] command",
            sensitive_output: false,
            on_spawn: None,
            on_line: None,
        }
    }

    pub fn on_spawn(mut self, hook: Option<SpawnHook>) -> Self {
        self.on_spawn = hook;
        self
    }

    pub fn on_line(mut self, hook: Option<LineHook>) -> Self {
        self.on_line = hook;
        self
    }

    pub(crate) fn env(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.env.push((name.into(), value));
        self
    }

    pub(crate) fn timeout_setting(mut self, setting: &'static str) -> Self {
        self.timeout_setting = setting;
        self
    }

    pub(crate) fn sensitive(mut self) -> Self {
        self.sensitive_output = true;
        self
    }

    /// The program, for messages.
    pub(crate) fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CommandOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `lines` lines of stdout and stderr together, for error messages.
    pub(crate) fn tail(&self, lines: usize) -> String {
        tail_lines(&format!("{}\n{}", self.stdout, self.stderr), lines)
    }

    /// The exit code in words.
    pub(crate) fn code_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// The last `n` non-empty lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{label}: the command line is empty; check its argv in the config")]
    Empty { label: String },
    #[error(
        "{label}: cannot start `{program}`: {source}. Check that the program exists and that its argv in the config is right"
    )]
    Spawn {
        label: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{label}: `{program}` did not finish within {} and was killed. Look at the run log; raise {setting} if it needs longer",
        crate::process::clock::human_duration(*.timeout)
    )]
    Timeout {
        label: String,
        program: String,
        timeout: Duration,
        setting: &'static str,
    },
    #[error("{label}: `{program}` failed while running: {source}")]
    Io {
        label: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{label}: {message}")]
    Transport { label: String, message: String },
}

/// Runs commands. Local processes today; a transport (SSH) implements the same trait.
#[async_trait]
pub trait CommandRunner: Send + Sync {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError>;
}

/// Runs commands on this machine.
#[derive(Clone, Default)]
pub struct LocalRunner {
    log: Option<Arc<RunLog>>,
}

impl LocalRunner {
    pub fn new(log: Option<Arc<RunLog>>) -> Self {
        LocalRunner { log }
    }
}

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError> {
        let result = run_local(&spec).await;
        if let Some(log) = &self.log {
            log.command(&spec, &result);
        }
        result
    }
}

async fn run_local(spec: &CommandSpec) -> Result<CommandOutput, RunError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(RunError::Empty {
            label: spec.label.clone(),
        });
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timed-out (dropped) child must not outlive us (see kill_group below).
        .kill_on_drop(true)
        // No child needs the API key; an operator's OCTOPUS_API_KEY stays with octoup.
        .env_remove("OCTOPUS_API_KEY");
    for (name, value) in &spec.env {
        command.env(name, value.expose());
    }
    // A Ctrl-C or SIGTERM of octoup never reaches the child: octoup stops at a safe point
    // and lets the command finish.
    platform::detach(&mut command);
    if let Some(hook) = &spec.on_spawn {
        hook.launching();
    }
    let started = Instant::now();
    // fork/exec blocks for milliseconds under load: off the runtime's threads, the spawns
    // of one phase's nodes (polled together in one task) overlap instead of queueing.
    let child = tokio::task::spawn_blocking(move || command.spawn())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        .map_err(|source| RunError::Spawn {
            label: spec.label.clone(),
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    if let (Some(hook), Some(pid)) = (&spec.on_spawn, pid) {
        hook.spawned(ProcessId::of(pid));
    }
    match tokio::time::timeout(spec.timeout, collect(child, spec.on_line.as_ref())).await {
        // Dropping the future dropped the child, which kill_on_drop kills; what it started
        // in its process group goes with it.
        Err(_) => {
            if let Some(pid) = pid {
                platform::kill_group(pid);
            }
            Err(RunError::Timeout {
                label: spec.label.clone(),
                program: program.clone(),
                timeout: spec.timeout,
                setting: spec.timeout_setting,
            })
        }
        Ok(Err(source)) => Err(RunError::Io {
            label: spec.label.clone(),
            program: program.clone(),
            source,
        }),
        Ok(Ok((status, stdout, stderr))) => Ok(CommandOutput {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            duration: started.elapsed(),
        }),
    }
}

/// Waits for the child and gathers its output; with a hook, stdout is read line by line
/// and each line is told as it arrives. The child is owned here, so a timeout that drops
/// this future kills it (`kill_on_drop`).
async fn collect(
    mut child: tokio::process::Child,
    hook: Option<&LineHook>,
) -> std::io::Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let Some(hook) = hook else {
        let output = child.wait_with_output().await?;
        return Ok((output.status, output.stdout, output.stderr));
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = async {
        let mut all = Vec::new();
        if let Some(out) = stdout {
            let mut reader = tokio::io::BufReader::new(out);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).await? > 0 {
                hook.line(String::from_utf8_lossy(&line).trim_end());
                all.append(&mut line);
            }
        }
        Ok::<_, std::io::Error>(all)
    };
    let read_err = async {
        let mut all = Vec::new();
        if let Some(mut err) = stderr {
            err.read_to_end(&mut all).await?;
        }
        Ok::<_, std::io::Error>(all)
    };
    let (out, err, status) = tokio::join!(read_out, read_err, child.wait());
    Ok((status?, out?, err?))
}

/// Fills `{installer}`, `{log}`, `{version}` (and any other `{name}` given) in an argv
/// template. Unknown `{...}` stay as written: msiexec product codes look like `{GUID}`.
pub(crate) fn expand(template: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (name, value) in vars {
                out = out.replace(&format!("{{{name}}}"), value);
            }
            out
        })
        .collect()
}

/// An argv as one line for people: arguments with spaces or quotes are double-quoted.
pub(crate) fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\t', '"', '\'']) {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The run's log file: every command with its argv, exit code, duration and output, plus
/// the engine's notes. Every secret it knows of is replaced by `***` before writing.
pub struct RunLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
    secrets: Mutex<Vec<String>>,
}

impl RunLog {
    /// Opens (appends to) the log file, creating its directory.
    pub fn open(path: &Path) -> std::io::Result<RunLog> {
        std::fs::create_dir_all(crate::process::fsutil::parent_dir(path))?;
        let file = platform::append_owner_only(path)?;
        Ok(RunLog {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
            secrets: Mutex::new(Vec::new()),
        })
    }

    /// A log that writes nothing (plan, tests).
    pub(crate) fn disabled() -> RunLog {
        RunLog {
            path: PathBuf::new(),
            file: Mutex::new(None),
            secrets: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Never write this value (it is replaced by `***`).
    pub fn redact(&self, secret: &Secret) {
        // Very short values would blank out ordinary text; real secrets are long.
        if secret.expose().len() >= 6
            && let Ok(mut s) = self.secrets.lock()
        {
            s.push(secret.expose().to_string());
        }
    }

    /// Replaces every known secret in `text` by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(secrets) = self.secrets.lock() {
            for s in secrets.iter() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// A timestamped note.
    pub(crate) fn note(&self, text: &str) {
        self.write(&format!("{} {}\n", jiff::Timestamp::now(), text));
    }

    /// A finished (or failed) command.
    pub(crate) fn command(&self, spec: &CommandSpec, result: &Result<CommandOutput, RunError>) {
        let mut entry = format!(
            "{} $ [{}] {}\n",
            jiff::Timestamp::now(),
            spec.label,
            display_argv(&spec.argv)
        );
        if !spec.env.is_empty() {
            let names: Vec<&str> = spec.env.iter().map(|(n, _)| n.as_str()).collect();
            let _ = writeln!(entry, "  env: {} (values not logged)", names.join(", "));
        }
        match result {
            Ok(out) => {
                let _ = writeln!(
                    entry,
                    "  {} after {:.2}s",
                    out.code_text(),
                    out.duration.as_secs_f64()
                );
                if spec.sensitive_output {
                    entry.push_str("  output: <redacted>\n");
                } else {
                    append_block(&mut entry, "stdout", &out.stdout);
                    append_block(&mut entry, "stderr", &out.stderr);
                }
            }
            Err(e) => {
                let _ = writeln!(entry, "  error: {e}");
            }
        }
        self.write(&entry);
    }

    fn write(&self, text: &str) {
        let text = self.scrub(text);
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
        {
            // A log that cannot be written must not stop an upgrade half-way.
            let _ = file.write_all(text.as_bytes());
            let _ = file.flush();
        }
    }
}

fn append_block(entry: &mut String, name: &str, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let _ = writeln!(entry, "  --- {name} ---");
    for line in text.lines() {
        let _ = writeln!(entry, "  | {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placeholders_are_filled_and_unknown_braces_kept() {
        let template = argv(&[
            "msiexec",
            "/i",
            "{installer}",
            "/l*v",
            "{log}",
            "VERSION={version}",
            "{8E3A-GUID}",
        ]);
        let out = expand(
            &template,
            &[
                ("installer", r"C:\cache\Octopus.2024.2.7-x64.msi"),
                ("log", "install.log"),
                ("version", "2024.2.7"),
            ],
        );
        assert_eq!(
            out,
            argv(&[
                "msiexec",
                "/i",
                r"C:\cache\Octopus.2024.2.7-x64.msi",
                "/l*v",
                "install.log",
                "VERSION=2024.2.7",
                "{8E3A-GUID}",
            ])
        );
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn runs_a_command_captures_output_and_passes_secret_env() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RunLog::open(&dir.path().join("run.log")).unwrap());
        log.redact(&Secret::new("hunter2-secret"));
        let runner = LocalRunner::new(Some(log.clone()));
        let spec = CommandSpec::new(
            "echo test",
            argv(&["sh", "-c", "echo out; echo err >&2; echo $PW; exit 3"]),
            Duration::from_secs(10),
        )
        .env("PW", Secret::new("hunter2-secret"));
        let out = runner.run(spec).await.unwrap();
        assert_eq!(out.code, Some(3));
        assert!(out.stdout.contains("out"));
        assert!(
            out.stdout.contains("hunter2-secret"),
            "the caller gets the output"
        );
        assert!(out.stderr.contains("err"));
        let text = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
        assert!(text.contains("exit code 3"), "{text}");
        assert!(text.contains("env: PW (values not logged)"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sensitive_output_is_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RunLog::open(&dir.path().join("run.log")).unwrap());
        let runner = LocalRunner::new(Some(log));
        let spec = CommandSpec::new(
            "show-master-key",
            // The value is computed, so only the output (never the argv) holds it.
            argv(&["sh", "-c", "echo TOPSECRET$((40+2))KEY=="]),
            Duration::from_secs(10),
        )
        .sensitive();
        let out = runner.run(spec).await.unwrap();
        assert_eq!(out.stdout.trim(), "TOPSECRET42KEY==");
        let text = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("TOPSECRET42KEY"), "{text}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-alive");
        let script = format!("sleep 2; touch {}", marker.display());
        let runner = LocalRunner::default();
        let started = Instant::now();
        let err = runner
            .run(
                CommandSpec::new(
                    "install",
                    argv(&["sh", "-c", &script]),
                    Duration::from_millis(200),
                )
                .timeout_setting("[timeouts] install"),
            )
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(1500));
        let msg = err.to_string();
        assert!(matches!(err, RunError::Timeout { .. }), "{msg}");
        assert!(
            msg.contains("`sh`") && msg.contains("[timeouts] install"),
            "{msg}"
        );
        // Killed: the command never gets to its second half.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the timed-out child kept running");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_timed_out_command_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-alive");
        // The grandchild outlives its parent's kill unless the whole group is killed.
        let script = format!("(sleep 1; touch {}) & wait", marker.display());
        let err = LocalRunner::default()
            .run(CommandSpec::new(
                "backup",
                argv(&["sh", "-c", &script]),
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !marker.exists(),
            "the timed-out command's child kept running"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_child_runs_in_its_own_process_group_and_its_pid_is_reported() {
        let seen = Arc::new(Mutex::new(None));
        let order = Arc::new(Mutex::new(Vec::new()));
        let hook = {
            let (seen, order, first) = (seen.clone(), order.clone(), order.clone());
            SpawnHook::new(move |id| {
                *seen.lock().unwrap() = Some(id);
                order.lock().unwrap().push("spawned");
            })
            .with_launching(move || first.lock().unwrap().push("launching"))
        };
        let out = LocalRunner::default()
            .run(
                CommandSpec::new(
                    "pgid",
                    argv(&["sh", "-c", "echo $$; ps -o pgid= -p $$"]),
                    Duration::from_secs(10),
                )
                .on_spawn(Some(hook)),
            )
            .await
            .unwrap();
        let mut lines = out.stdout.lines().map(|l| l.trim().to_string());
        let (pid, pgid) = (lines.next().unwrap(), lines.next().unwrap());
        assert_eq!(pid, pgid, "its own process group: {}", out.stdout);
        let id = seen.lock().unwrap().expect("the pid was reported");
        assert_eq!(*order.lock().unwrap(), ["launching", "spawned"]);
        assert_eq!(id.pid.to_string(), pid);
    }

    #[tokio::test]
    async fn a_missing_program_is_explained() {
        let err = LocalRunner::default()
            .run(CommandSpec::new(
                "version",
                argv(&["/definitely/not/here/Octopus.Server.exe", "version"]),
                Duration::from_secs(5),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }));
        assert!(err.to_string().contains("argv in the config"), "{err}");
    }

    #[test]
    fn argv_display_quotes_spaces() {
        assert_eq!(
            display_argv(&argv(&["a b", "c", ""])),
            "\"a b\" c \"\"".to_string()
        );
    }
}
