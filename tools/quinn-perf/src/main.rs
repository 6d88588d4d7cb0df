//! The `quinn-perf` binary: parses arguments and runs [`quinn_perf::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    quinn_perf::cli::run(quinn_perf::cli::Cli::parse())
}
