//! The text after `--help`: examples, the environment and the exit statuses (from
//! [`Exit`], the one source the README's table is checked against).

use crate::exit::Exit;

const EXAMPLES: &str = "\
Examples:
  octoup init --url https://octopus.example.com     write a commented ./octoup.toml (one node)
  octoup init --nodes NODE1=https://node1 NODE2=https://node2 --sql-server sql01
                                                    the same for an HA cluster
  octoup config check                               validate the config offline; show what it resolves to
  octoup check --current 2024.1.10                  which version, by which path, and why not the others
  octoup plan                                       what an upgrade would do, with estimated durations
  octoup upgrade --yes                              the upgrade (resumes an unfinished run)
  octoup status --json                              the current or last run, for a machine
  octoup completions bash > /etc/bash_completion.d/octoup
  octoup man > /usr/local/share/man/man1/octoup.1";

const ENVIRONMENT: &str = "\
Environment:
  OCTOPUS_URL        overrides [server] url
  OCTOPUS_API_KEY    the API key (overrides [server] api_key_file); never accepted as an argument";

/// The exit statuses, one a line: `  2  bad usage or configuration; ...`.
pub fn exit_statuses() -> String {
    let mut out = String::from("Exit status:");
    for exit in Exit::ALL {
        out.push_str(&format!("\n  {}  {}", exit as u8, exit.meaning()));
    }
    out
}

/// After `--help`.
pub fn after_long_help() -> String {
    format!("{EXAMPLES}\n\n{ENVIRONMENT}\n\n{}", exit_statuses())
}

/// After `-h`.
pub fn after_help() -> String {
    let codes = Exit::ALL.map(|e| (e as u8).to_string()).join(", ");
    format!("{ENVIRONMENT}\n\nExit status: {codes} (`--help` says what each means, with examples).")
}
