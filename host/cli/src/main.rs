//! The `cubby` command-line tool: see `cubby --help`.

fn main() -> std::process::ExitCode {
    cubby_cli::main()
}
