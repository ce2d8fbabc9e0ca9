//! The SSH transport: runs an argv on another machine through the system OpenSSH client.
//!
//! Every connection is made with `BatchMode=yes` (never a password or passphrase prompt that
//! would hang a scheduled run), `StrictHostKeyChecking=yes` (an unknown or changed host key
//! is a failure, never a silent trust: the operator supplies `known_hosts`, e.g. through
//! `[ssh] options = ["UserKnownHostsFile=..."]`) and `ConnectTimeout`. OpenSSH keeps the first
//! value it is given for an option, and ours come first, so `[ssh] options` cannot weaken
//! them; options that try are refused with an explanation.
//!
//! ssh joins the remote arguments with spaces and hands the line to the remote user's login
//! shell, so each argument is quoted for a **POSIX shell** (sh, bash, dash, zsh, ksh). A
//! Windows OpenSSH server runs `cmd.exe` by default, whose quoting differs: point its
//! `DefaultShell` at a POSIX shell (e.g. Git Bash) on nodes octoup reaches over SSH.
//!
//! Nothing secret ever goes on the ssh command line: a command that needs a secret in its
//! environment (sqlcmd's `SQLCMDPASSWORD`) is refused here, because ssh would not carry the
//! environment and putting the value into the command line would expose it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::SshConfig;
use crate::process::runner::{CommandOutput, CommandRunner, CommandSpec, RunError};

/// The exit status OpenSSH uses for its own failures (connection, authentication, host key).
pub(crate) const SSH_FAILURE_EXIT: i32 = 255;

/// Options octoup sets itself; `[ssh] options` may not set them.
const FIXED_OPTIONS: [(&str, &str); 3] = [
    (
        "BatchMode",
        "octoup always sets BatchMode=yes so a run never waits for a password prompt; use a key (IdentityFile=...)",
    ),
    (
        "StrictHostKeyChecking",
        "host-key checking is always on; add the node's host key to a known_hosts file and give it as UserKnownHostsFile=...",
    ),
    (
        "ConnectTimeout",
        "set [ssh] connect_timeout_seconds instead",
    ),
];

/// Keepalives so a dead connection fails within a minute instead of at the command
/// timeout; after the operator's options, so theirs win.
const DEFAULT_OPTIONS: [&str; 2] = ["ServerAliveInterval=15", "ServerAliveCountMax=4"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    #[error(
        "node {node}: ssh = {destination:?} is not a valid destination: {reason}. Write it as user@host or host"
    )]
    Destination {
        node: String,
        destination: String,
        reason: &'static str,
    },
    #[error("[ssh] options entry {option:?} is refused: {reason}")]
    Option { option: String, reason: String },
    #[error("[ssh] program is empty: give the argv of the OpenSSH client, e.g. [\"ssh\"]")]
    NoProgram,
    #[error("argument {index} of the remote command holds a NUL byte, which no shell can pass on")]
    Nul { index: usize },
}

/// How to reach one node: the ssh argv prefix with octoup's fixed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTransport {
    program: Vec<String>,
    options: Vec<String>,
    destination: String,
    connect_timeout: Duration,
}

impl SshTransport {
    /// Checks `[ssh]` and the node's `ssh = ...` destination.
    pub fn new(
        ssh: &SshConfig,
        node: &str,
        destination: &str,
    ) -> Result<SshTransport, TransportError> {
        if ssh.program.is_empty() || ssh.program[0].trim().is_empty() {
            return Err(TransportError::NoProgram);
        }
        check_destination(node, destination)?;
        for option in &ssh.options {
            check_option(option)?;
        }
        Ok(SshTransport {
            program: ssh.program.clone(),
            options: ssh.options.clone(),
            destination: destination.to_string(),
            connect_timeout: Duration::from_secs(ssh.connect_timeout_seconds.max(1)),
        })
    }

    #[cfg(test)]
    pub(crate) fn destination(&self) -> &str {
        &self.destination
    }

    /// The local argv that runs `remote` on the node.
    pub(crate) fn argv(&self, remote: &[String]) -> Result<Vec<String>, TransportError> {
        let line = remote_command_line(remote)?;
        let mut argv = self.program.clone();
        let mut option = |value: String| {
            argv.push("-o".into());
            argv.push(value);
        };
        option("BatchMode=yes".into());
        option("StrictHostKeyChecking=yes".into());
        option(format!("ConnectTimeout={}", self.connect_timeout.as_secs()));
        for o in &self.options {
            option(o.clone());
        }
        for o in DEFAULT_OPTIONS {
            option(o.into());
        }
        // No terminal: output stays byte-exact (no CR/LF rewriting) and stdin is closed.
        argv.push("-T".into());
        argv.push(self.destination.clone());
        argv.push(line);
        Ok(argv)
    }
}

fn check_destination(node: &str, destination: &str) -> Result<(), TransportError> {
    let bad = |reason| {
        Err(TransportError::Destination {
            node: node.to_string(),
            destination: destination.to_string(),
            reason,
        })
    };
    if destination.trim().is_empty() {
        return bad("it is empty");
    }
    // A leading dash would make ssh read it as an option.
    if destination.starts_with('-') {
        return bad("it starts with '-'");
    }
    if destination
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return bad("it holds spaces or control characters");
    }
    Ok(())
}

fn check_option(option: &str) -> Result<(), TransportError> {
    let refuse = |reason: &str| {
        Err(TransportError::Option {
            option: option.to_string(),
            reason: reason.to_string(),
        })
    };
    if option.chars().any(char::is_control) {
        return refuse("it holds control characters");
    }
    let key = option
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .trim();
    if key.is_empty() || option.trim_start().starts_with('-') {
        return refuse("write it as Key=Value, e.g. UserKnownHostsFile=/etc/octoup/known_hosts");
    }
    if let Some((_, why)) = FIXED_OPTIONS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
    {
        return refuse(why);
    }
    Ok(())
}

/// `arg` quoted for a POSIX shell: unchanged when it holds only characters no shell treats
/// specially, else in single quotes (inside which only `'` itself needs care: `'\''`).
pub(crate) fn quote_posix(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The one line ssh sends: every argument quoted, joined with spaces.
pub(crate) fn remote_command_line(argv: &[String]) -> Result<String, TransportError> {
    if let Some(index) = argv.iter().position(|a| a.contains('\0')) {
        return Err(TransportError::Nul { index });
    }
    Ok(argv
        .iter()
        .map(|a| quote_posix(a))
        .collect::<Vec<_>>()
        .join(" "))
}

/// A [`CommandRunner`] that runs each command on the node over SSH. The local ssh process
/// has the command's timeout plus the connect timeout; when it is killed the remote command
/// may run on until it next writes (no terminal is allocated), so remote timeouts should be
/// shorter than local ones.
pub struct SshRunner {
    transport: SshTransport,
    /// Runs the local ssh process (and logs it).
    local: Arc<dyn CommandRunner>,
}

impl SshRunner {
    /// `local` runs the ssh client itself, usually the run's [`crate::process::runner::LocalRunner`].
    pub fn new(transport: SshTransport, local: Arc<dyn CommandRunner>) -> SshRunner {
        SshRunner { transport, local }
    }

    #[cfg(test)]
    pub(crate) fn transport(&self) -> &SshTransport {
        &self.transport
    }
}

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError> {
        let label = format!("{} (ssh {})", spec.label, self.transport.destination);
        if !spec.env.is_empty() {
            let names: Vec<&str> = spec.env.iter().map(|(n, _)| n.as_str()).collect();
            return Err(RunError::Transport {
                label,
                message: format!(
                    "the command needs {} in its environment, which octoup never sends over ssh; run it on this machine instead",
                    names.join(", ")
                ),
            });
        }
        let argv = self
            .transport
            .argv(&spec.argv)
            .map_err(|e| RunError::Transport {
                label: label.clone(),
                message: e.to_string(),
            })?;
        let ssh_spec = CommandSpec {
            label: label.clone(),
            argv,
            env: Vec::new(),
            timeout: spec.timeout + self.transport.connect_timeout,
            timeout_setting: spec.timeout_setting,
            sensitive_output: spec.sensitive_output,
            // The local ssh client's: it lives as long as the remote command, unless the
            // connection broke (then the remote command may run on until it next writes).
            // Callers that must be sure (the schema upgrade) do not ask for it.
            on_spawn: spec.on_spawn.clone(),
            on_line: spec.on_line.clone(),
        };
        let out = self.local.run(ssh_spec).await?;
        if out.code == Some(SSH_FAILURE_EXIT) {
            return Err(RunError::Transport {
                label,
                message: ssh_failure_message(&self.transport.destination, &out.stderr),
            });
        }
        Ok(out)
    }
}

/// ssh's own failure, with the operator's next step for the common causes.
fn ssh_failure_message(destination: &str, stderr: &str) -> String {
    let said = crate::process::runner::tail_lines(stderr, 3);
    let lower = said.to_ascii_lowercase();
    let advice = if lower.contains("host key verification failed")
        || lower.contains("no matching host key")
        || lower.contains("remote host identification has changed")
    {
        "the node's host key is not in the known_hosts file octoup uses (or it changed): verify the key and add it, e.g. [ssh] options = [\"UserKnownHostsFile=...\"]"
    } else if lower.contains("permission denied") {
        "the key was refused: check IdentityFile in [ssh] options and the node's authorized_keys"
    } else if lower.contains("timed out") || lower.contains("refused") || lower.contains("resolve")
    {
        "the node's SSH server cannot be reached: check the address, that sshd runs and the firewall"
    } else {
        "check that `ssh` works by hand with the same options"
    };
    format!(
        "ssh to {destination} failed (exit status 255): {}. Next: {advice}",
        if said.is_empty() {
            "no message".to_string()
        } else {
            said.replace('\n', " / ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn config(options: &[&str]) -> SshConfig {
        SshConfig {
            program: strings(&["ssh", "-F", "/etc/octoup/ssh_config"]),
            connect_timeout_seconds: 7,
            options: strings(options),
            remote_octoup: strings(&["octoup"]),
        }
    }

    #[test]
    fn argv_puts_fixed_options_first_then_the_operators_then_keepalives() {
        let t = SshTransport::new(
            &config(&["UserKnownHostsFile=/k h", "IdentityFile=/id"]),
            "N1",
            "admin@node1",
        )
        .unwrap();
        let argv = t.argv(&strings(&["octoup", "node", "status"])).unwrap();
        assert_eq!(
            argv,
            strings(&[
                "ssh",
                "-F",
                "/etc/octoup/ssh_config",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=7",
                "-o",
                "UserKnownHostsFile=/k h",
                "-o",
                "IdentityFile=/id",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "-T",
                "admin@node1",
                "octoup node status",
            ])
        );
    }

    #[test]
    fn weakening_options_and_bad_destinations_are_refused() {
        for option in [
            "StrictHostKeyChecking=no",
            "stricthostkeychecking no",
            "BatchMode=no",
            "ConnectTimeout=0",
            "-oBatchMode=no",
            "",
            "Foo=bar\nBatchMode=no",
        ] {
            let err = SshTransport::new(&config(&[option]), "N1", "h").unwrap_err();
            assert!(
                matches!(err, TransportError::Option { .. }),
                "{option:?}: {err}"
            );
        }
        let err = SshTransport::new(&config(&["StrictHostKeyChecking=no"]), "N1", "h")
            .unwrap_err()
            .to_string();
        assert!(err.contains("known_hosts"), "{err}");
        for dest in ["", "-oProxyCommand=x", "a b", "a\nb"] {
            let err = SshTransport::new(&config(&[]), "N1", dest).unwrap_err();
            assert!(
                matches!(err, TransportError::Destination { .. }),
                "{dest:?}"
            );
            assert!(err.to_string().contains("N1"));
        }
        let mut no_program = config(&[]);
        no_program.program.clear();
        assert_eq!(
            SshTransport::new(&no_program, "N1", "h").unwrap_err(),
            TransportError::NoProgram
        );
    }

    #[test]
    fn quoting_leaves_plain_words_alone_and_quotes_the_rest() {
        assert_eq!(quote_posix("node"), "node");
        assert_eq!(
            quote_posix("/opt/octoup/bin/octoup"),
            "/opt/octoup/bin/octoup"
        );
        assert_eq!(quote_posix("OCTO-NODE-01"), "OCTO-NODE-01");
        assert_eq!(quote_posix(""), "''");
        assert_eq!(quote_posix("a b"), "'a b'");
        assert_eq!(quote_posix("it's"), r"'it'\''s'");
        // An assignment-looking first word must stay a command, `~` must not expand.
        assert_eq!(quote_posix("A=b"), "'A=b'");
        assert_eq!(quote_posix("~root"), "'~root'");
        assert_eq!(quote_posix("$(reboot)"), "'$(reboot)'");
        assert_eq!(
            remote_command_line(&strings(&["a\0b"])),
            Err(TransportError::Nul { index: 0 })
        );
    }

    #[test]
    fn ssh_failures_say_what_to_do() {
        let m = ssh_failure_message("root@h", "Host key verification failed.\r\n");
        assert!(m.contains("known_hosts") && m.contains("root@h"), "{m}");
        let m = ssh_failure_message("h", "root@h: Permission denied (publickey).");
        assert!(m.contains("IdentityFile"), "{m}");
        let m = ssh_failure_message("h", "ssh: connect to host h port 22: Connection refused");
        assert!(m.contains("sshd runs"), "{m}");
    }

    /// A stand-in for ssh that runs the remote line with the local shell, so the runner's
    /// own behaviour is tested without a server (the e2e tests use a real sshd).
    #[cfg(unix)]
    fn fake_ssh_runner() -> SshRunner {
        let mut cfg = config(&[]);
        cfg.program = strings(&[
            "sh",
            "-c",
            r#"for last; do :; done; case "$last" in *EXIT255*) echo 'Host key verification failed.' >&2; exit 255;; esac; exec sh -c "$last""#,
            "fake-ssh",
        ]);
        SshRunner::new(
            SshTransport::new(&cfg, "N1", "root@h").unwrap(),
            Arc::new(crate::process::runner::LocalRunner::default()),
        )
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_runner_carries_output_and_exit_codes_and_refuses_secret_env() {
        let runner = fake_ssh_runner();
        let spec =
            |argv: &[&str]| CommandSpec::new("probe", strings(argv), Duration::from_secs(10));
        let out = runner
            .run(spec(&["sh", "-c", "echo \"$0 $1\"; exit 3", "it's", "a b"]))
            .await
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "it's a b\n");
        let err = runner
            .run(spec(&["true", "EXIT255"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root@h") && err.contains("known_hosts"),
            "{err}"
        );
        let err = runner
            .run(spec(&["sqlcmd"]).env("SQLCMDPASSWORD", crate::config::Secret::new("pw-123456")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SQLCMDPASSWORD") && !err.contains("pw-123456"),
            "{err}"
        );
    }

    /// What a POSIX shell makes of `line`: the words `printf '%s\0'` receives.
    #[cfg(unix)]
    fn shell_words(args: &[String]) -> Vec<String> {
        let mut argv = strings(&["printf", "%s\\0"]);
        argv.extend(args.iter().cloned());
        let line = remote_command_line(&argv).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        let mut words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        words.pop(); // after the last NUL
        words
    }

    #[cfg(unix)]
    #[test]
    fn nasty_arguments_survive_a_real_shell() {
        let args = strings(&[
            "",
            " ",
            "'",
            "''",
            "\"",
            "\\",
            "$HOME",
            "`id`",
            "a;b",
            "a|b&c",
            "*",
            "~",
            "#x",
            "new\nline",
            "tab\there",
            "C:\\Program Files\\Octopus Deploy\\Octopus\\Octopus.Server.exe",
            "ünïcödé ✓",
            "-n",
        ]);
        assert_eq!(shell_words(&args), args);
    }

    #[cfg(unix)]
    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn any_arguments_survive_the_remote_shell(
            args in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)
        ) {
            prop_assert_eq!(shell_words(&args), args);
        }
    }
}
