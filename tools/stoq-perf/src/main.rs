//! The `stoq-perf` binary: parses arguments and runs [`stoq_perf::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    stoq_perf::cli::run(stoq_perf::cli::Cli::parse())
}
