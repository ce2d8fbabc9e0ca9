fn main() {
    let mut args = std::env::args_os();
    // The absolute path of this executable goes into DIR/octoup.toml and starts the daemon.
    let program = std::env::current_exe()
        .map(|p| p.into_os_string())
        .or_else(|_| args.next().ok_or(()))
        .unwrap_or_else(|_| "octoup-sim".into());
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    std::process::exit(octoup_sim::run_cli(vec![program], args));
}
