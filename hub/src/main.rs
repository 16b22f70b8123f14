//! `simpul`: the Purwakarta regency data hub.

fn main() -> std::process::ExitCode {
    simpul_hub::cli::main()
}
