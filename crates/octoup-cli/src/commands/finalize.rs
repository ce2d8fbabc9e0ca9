//! `octoup finalize`: releases the snapshot or database copy the last upgrade keeps
//! (`[rollback] keep_hours`). Nothing held is success: it can run after every upgrade.

use octoup::engine::finalize::finalize;

use super::upgrade::{block_on, settle};
use crate::context::Context;
use crate::exit::Exit;

pub fn run(ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let done = match settle(ctx, block_on(finalize(config, &ctx.env))) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    ctx.show(&done, || {
        let mut text = format!("{}.\n", done.detail);
        if let Some(held) = &done.released {
            text.push_str(&format!(
                "Run {} can no longer be taken back by `octoup rollback`; the backup from before its outage stays where it is.\n",
                held.run
            ));
        }
        text
    });
    Exit::Ok
}
