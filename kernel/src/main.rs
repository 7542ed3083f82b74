fn main() -> std::process::ExitCode {
    // When evcxr starts this binary as its child process, forward the child's
    // output through our line guard, then let evcxr's runtime take over (it
    // never returns in that case).
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        slurmbook_kernel::engine::child_io::install();
    }
    evcxr::runtime_hook();
    slurmbook_kernel::cli::main()
}
