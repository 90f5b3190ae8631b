//! `balancer`: parse the command line, load the config, run.

use std::process::ExitCode;

use anyhow::Context as _;
use balancer::{
    cli::{Cli, Command},
    config, logging, server, summary,
};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => match config::load(&file) {
            Ok(c) => {
                print!("{}: ok\n{}", file.display(), summary::render(&c));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Status { state_dir } => match balancer::status::read(&state_dir) {
            Ok(s) => {
                print!(
                    "{}",
                    balancer::status::render(&s, balancer::status::now_ms())
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Explain {
            config: file,
            against,
            protocol,
            source,
            destination,
        } => {
            match explain(
                &file,
                against.as_deref(),
                protocol.zip(source).zip(destination),
            ) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Decap {
            interface,
            endpoint,
        } => {
            logging::init(cli.log_format);
            match runtime()
                .and_then(|rt| Ok(rt.block_on(balancer::decap::run(&interface, &endpoint))?))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config: file } => {
            logging::init(cli.log_format);
            match run(file.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = if let Some(f) = file {
        config::load(f)?
    } else {
        tracing::info!("no config file given: serving the embedded demo (config/default.yaml)");
        config::embedded_default()?
    };
    runtime()?.block_on(server::run(config))?;
    Ok(())
}

type Flow = (
    (balancer::config::model::Protocol, std::net::SocketAddr),
    std::net::SocketAddr,
);

fn explain(
    file: &std::path::Path,
    against: Option<&std::path::Path>,
    flow: Option<Flow>,
) -> anyhow::Result<String> {
    let config = config::load(file)?;
    if let Some(new) = against {
        return Ok(balancer::explain::ring_changes(
            &config,
            &config::load(new)?,
        ));
    }
    let ((protocol, source), destination) =
        flow.context("give PROTOCOL SOURCE DESTINATION, or --against FILE")?;
    Ok(balancer::explain::flow(
        &config,
        protocol,
        source,
        destination,
    )?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
