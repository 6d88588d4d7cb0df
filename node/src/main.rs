//! The `stoq-node` binary: parses arguments and runs [`stoq_node::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    stoq_node::cli::run(stoq_node::cli::Cli::parse())
}
