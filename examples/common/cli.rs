//! What every example's `main` does with the result of its work.

/// Runs `run` and turns its result into the exit code, printing an error
/// with Display (the op, shape or file it names) rather than the Debug
/// form a `main` returning `Result` prints.
pub fn exit_code<E: std::fmt::Display>(
    run: impl FnOnce() -> Result<(), E>,
) -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
