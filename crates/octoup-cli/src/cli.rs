//! Command-line types only: no logic here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "octoup",
    version = env!("OCTOUP_VERSION"),
    about = "Upgrade a self-hosted Octopus Deploy server or HA cluster safely, with the shortest outage",
    after_help = crate::help::after_help(),
    after_long_help = crate::help::after_long_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The config file.
    #[arg(
        long,
        global = true,
        default_value = "octoup.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (-v: progress and info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less on stderr: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// List every recorded run, newest last.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Choose the target version by policy and explain every other candidate.
    Check(CheckArgs),
    /// Show what an upgrade would do, with estimated durations. Changes nothing.
    Plan(PlanArgs),
    /// Every check that knows before the outage whether the upgrade will work. Changes nothing.
    Doctor(PlanArgs),
    /// After an upgrade: node versions, integrity check, stuck triggers, queue, Tentacles.
    Verify(VerifyArgs),
    /// Upgrade the server (or cluster); resumes an unfinished run.
    Upgrade(UpgradeArgs),
    /// Continue an interrupted run.
    Resume(YesArgs),
    /// Restore the database backup and the original version (also a finished upgrade while
    /// its snapshot or copy is held: `[rollback] keep_hours`).
    Rollback(YesArgs),
    /// Release the snapshot or database copy the last upgrade keeps for `octoup rollback`.
    Finalize,
    /// Upgrade a disarmed copy of production first: go/no-go and measured durations.
    /// Never touches production's database contents, nodes or maintenance mode.
    Rehearse(RehearseArgs),
    /// The current or last run, in words or JSON; the exit code says its state.
    Status(StatusArgs),
    /// Download and verify installers into the cache, without touching the server.
    Stage(StageArgs),
    /// Upgrade a simulated installation, with progress and a report.
    Demo(DemoArgs),
    /// Node-level steps, run on one node (the orchestrator calls these over the transport).
    Node(NodeArgs),
    /// Write a commented octoup.toml for one node or a cluster (never overwrites a file).
    Init(InitArgs),
    /// Work with the config file: `octoup config check`.
    Config(ConfigArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
    /// The built-in simulator (same as the octoup-sim binary).
    #[command(hide = true)]
    Sim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The installed version, when there is no server to ask.
    #[arg(long, value_name = "VERSION")]
    pub current: Option<String>,
    /// The version feed: a URL or a file (overrides [versions] feed).
    #[arg(long, value_name = "URL|FILE")]
    pub feed: Option<String>,
    /// Exit with 12 when an upgrade is eligible (0 when up to date), for a "notify me" job.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Upgrade to this version instead of the policy's choice.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Accept the warning with this id (repeatable; see `octoup doctor`).
    #[arg(long, value_name = "ID")]
    pub accept: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// Rehearse this version instead of the policy's choice.
    #[arg(long, value_name = "VERSION", conflicts_with = "cleanup")]
    pub to: Option<String>,
    /// Only remove what an interrupted rehearsal left (container, network, scratch database).
    #[arg(long)]
    pub cleanup: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Start the vendor's Tentacle upgrade: one machine first (the canary), then batches of
    /// [doctor] tentacle_batch; every version is read again afterwards.
    #[arg(long)]
    pub upgrade_tentacles: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Upgrade to this version instead of the policy's choice.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Accept the warning with this id (repeatable; the journal records it).
    #[arg(long, value_name = "ID")]
    pub accept: Vec<String>,
    /// This run's hard end, instead of [window]: RFC 3339 (2026-12-05T04:00:00+01:00) or a
    /// local HH:MM (the next such time). Refuses to begin when the work does not fit.
    #[arg(long, value_name = "TIME")]
    pub until: Option<octoup::window::Until>,
    /// Do not ask for confirmation (needed without a terminal on standard input).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct YesArgs {
    /// Do not ask for confirmation (needed without a terminal on standard input).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Stage this version instead of the policy's choice.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the simulated cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Keep the simulated installation in this directory (default: a temporary one).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Simulated-to-real time scale (real seconds per simulated second).
    #[arg(long, default_value_t = 0.02)]
    pub time_scale: f64,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: NodeAction,
    /// Which node of [[nodes]] this is (default: the only one).
    #[arg(long, global = true)]
    pub node: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Download and verify the installer on this node.
    Stage {
        #[arg(long)]
        to: String,
        /// The installer is kept for a rollback (the installed version): only per-version
        /// hash sources apply, not installer.sha256.
        #[arg(long)]
        rollback: bool,
    },
    /// Delete the watchdog and stop the service; confirm the node is down.
    Stop,
    /// Install the staged installer.
    Install {
        #[arg(long)]
        to: String,
        /// Install only the staged installer with this SHA-256 (the same bits on every node).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
    },
    /// Remove the installed version with its staged installer (msiexec /x), before
    /// installing an older one.
    Uninstall {
        /// The installed version to remove (its installer must be staged on this node).
        #[arg(long, value_name = "VERSION")]
        installed: String,
        /// Use only the staged installer with this SHA-256.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
    },
    /// Start the service (and recreate the watchdog when asked).
    Start {
        /// Refuse unless the installed version is this one; wait until the node serves it.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Recreate the watchdog that `octoup node stop` deleted.
        #[arg(long)]
        watchdog: bool,
    },
    /// The node's installed version and service state.
    Status,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cluster's nodes, as registered in Octopus, each with its own address (repeat the
    /// flag or list several). Without it, this machine is the one node.
    #[arg(long, value_name = "NAME=URL", num_args = 1.., value_parser = parse_node)]
    pub nodes: Vec<(String, String)>,
    /// The server (or load balancer) URL.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The SQL Server host of the Octopus database (for sqlcmd -S).
    #[arg(long, value_name = "HOST")]
    pub sql_server: Option<String>,
    /// The Octopus database name.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Where to write the config (an existing file is never overwritten).
    #[arg(long, value_name = "FILE", default_value = "octoup.toml")]
    pub out: PathBuf,
}

/// `NAME=URL`.
fn parse_node(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, url)) if !name.trim().is_empty() && !url.trim().is_empty() => {
            Ok((name.trim().to_string(), url.trim().to_string()))
        }
        _ => Err(format!(
            "expected NAME=URL (the node's name in Octopus and its own address), found {text:?}"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the config offline and print what it resolves to (secrets redacted).
    Check,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
