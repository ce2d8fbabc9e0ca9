//! `octoup init`: writes a commented octoup.toml (the text is
//! `octoup::config::init_template`'s) and never overwrites a file.

use std::io::Write;

use octoup::config::{InitOptions, init_template};

use crate::cli::InitArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(args: InitArgs, ctx: &Context) -> Exit {
    let nodes = args.nodes.len();
    let options = InitOptions {
        nodes: args.nodes,
        url: args.url,
        sql_server: args.sql_server,
        database: args.database,
    };
    let text = match init_template(&options) {
        Ok(text) => text,
        Err(e) => {
            ctx.report_error(&e);
            return Exit::Usage;
        }
    };
    let out = &args.out;
    // create_new: an existing file (or one created meanwhile) is never touched.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
        });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            ctx.report_error(&format!(
                "{} already exists; octoup init never overwrites a file: move it away or give another --out FILE",
                out.display()
            ));
            return Exit::Usage;
        }
        Err(e) => {
            ctx.report_error(&format!("cannot write {}: {e}", out.display()));
            return Exit::Usage;
        }
    }
    if ctx.json {
        println!("{}", serde_json::json!({ "written": out, "nodes": nodes }));
    } else {
        println!(
            "Wrote {} ({}). Next: set OCTOPUS_API_KEY (or [server] api_key_file), then `octoup config check --config {}`.",
            out.display(),
            match nodes {
                0 => "one node: this machine".to_string(),
                n => format!("a cluster of {n} nodes"),
            },
            out.display()
        );
    }
    Exit::Ok
}
