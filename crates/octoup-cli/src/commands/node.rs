//! `octoup node <action>`: one node-level step on this machine (the JSON is documented in
//! docs/node-commands.md; the logic is `octoup::nodes::actions`).

use octoup::nodes::actions::NodeContext;
use octoup::nodes::protocol::{Action, Failure, Outcome, Reply};

use crate::cli::{NodeAction, NodeArgs};
use crate::context::Context;
use crate::exit::Exit;

pub fn run(args: NodeArgs, ctx: &Context) -> Exit {
    let action = match args.action {
        NodeAction::Stage { to, rollback } => Action::Stage {
            version: to,
            rollback,
        },
        NodeAction::Stop => Action::Stop,
        NodeAction::Install { to, sha256 } => Action::Install {
            version: to,
            sha256,
        },
        NodeAction::Uninstall { installed, sha256 } => Action::Uninstall {
            version: installed,
            sha256,
        },
        NodeAction::Start { to, watchdog } => Action::Start {
            version: to,
            watchdog,
        },
        NodeAction::Status => Action::Status,
    };
    let reply = answer(&action, args.node.as_deref(), ctx);
    if ctx.json {
        println!("{}", reply.to_json());
    } else {
        match &reply.result {
            Ok(outcome) => println!("{}", render(&reply.node, outcome)),
            Err(f) => eprintln!("error: {}", f.message),
        }
    }
    exit_for(&reply)
}

fn answer(action: &Action, node: Option<&str>, ctx: &Context) -> Reply {
    let refused = |failure: Failure| Reply {
        node: node.unwrap_or("").to_string(),
        action: action.name(),
        result: Err(failure),
    };
    let config = match ctx.load_config() {
        Ok(c) => c,
        Err(e) => return refused(Failure::config(e.to_string())),
    };
    let node_ctx = match NodeContext::new(&config, &ctx.env, node) {
        Ok(n) => n,
        Err(f) => return refused(f),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return refused(Failure::config(format!("cannot start the runtime: {e}"))),
    };
    runtime.block_on(node_ctx.run(action))
}

fn exit_for(reply: &Reply) -> Exit {
    match &reply.result {
        Ok(_) => Exit::Ok,
        Err(f) if f.kind == octoup::nodes::protocol::FailureKind::Config => Exit::Usage,
        Err(f) if f.kind.changed_nothing() => Exit::Refused,
        Err(_) => Exit::Failed,
    }
}

fn render(node: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Stage(r) => format!(
            "{node}: the {} installer is staged at {} (SHA-256 {}, {})",
            r.version,
            r.path.display(),
            r.sha256,
            if r.cached {
                "already in the cache"
            } else {
                "downloaded and verified"
            }
        ),
        Outcome::Stop(r) => format!(
            "{node}: stopped{}",
            match &r.watchdog_deleted {
                Some(_) => " (watchdog deleted; `octoup node start --watchdog` recreates it)",
                None => "",
            }
        ),
        Outcome::Install(r) => format!(
            "{node}: installed {} (exit code {}{}), log {}",
            r.installed_version,
            r.exit_code,
            if r.reboot_required {
                ", a reboot is required"
            } else {
                ""
            },
            r.log.display()
        ),
        Outcome::Uninstall(r) => format!(
            "{node}: uninstalled {} (exit code {}), log {}",
            r.version,
            r.exit_code,
            r.log.display()
        ),
        Outcome::Start(r) => format!(
            "{node}: serving {}{}",
            r.version,
            if r.watchdog_created {
                " (watchdog recreated)"
            } else {
                ""
            }
        ),
        Outcome::Status(r) => format!(
            "{node}: installed {}, service {}{}, watchdog {}",
            r.installed_version,
            r.service.detail,
            r.service
                .api_version
                .as_deref()
                .map(|v| format!(" serving {v}"))
                .unwrap_or_default(),
            match (&r.watchdog, &r.watchdog_error) {
                (Some(w), _) if w.enabled => "on",
                (Some(_), _) => "off",
                (None, Some(_)) => "unknown",
                (None, None) => "unknown",
            }
        ),
    }
}
