fn main() -> std::process::ExitCode {
    // cargo runs this binary as rustc's wrapper for evcxr's cell crates (the
    // compile cache); it exits with rustc's status.
    if slurmbook_kernel::engine::rustc_cache::is_wrapper_invocation() {
        slurmbook_kernel::engine::rustc_cache::wrapper_main();
    }
    // When evcxr starts this binary as its child process, forward the child's
    // output through our line guard, then let evcxr's runtime take over (it
    // never returns in that case).
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        slurmbook_kernel::engine::child_io::install();
    }
    evcxr::runtime_hook();
    slurmbook_kernel::cli::main()
}
