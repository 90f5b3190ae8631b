//! `balancer`: parse the command line and hand each command to its family
//! under `cli/`, which calls into the library.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;
use cli::{Cli, Command, admin, check, explain, generate, printed, run, status};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => printed(check::check(&file)),
        Command::Detach { config } => printed(check::detach(&config)),
        Command::Backend {
            action,
            pool,
            address,
            weight,
            config,
            admin: to,
        } => printed(admin::backend(
            action,
            &pool,
            address,
            weight,
            config.as_deref(),
            to,
        )),
        Command::Reload { config, admin: to } => printed(admin::reload(config.as_deref(), to)),
        Command::Announce {
            action,
            config,
            admin: to,
        } => printed(admin::announce(action, config.as_deref(), to)),
        Command::Guard {
            action,
            list,
            cidr,
            listener,
            config,
            admin: to,
        } => printed(admin::guard(
            action,
            list.zip(cidr),
            listener,
            config.as_deref(),
            to,
        )),
        Command::Status { state_dir } => printed(status::status(&state_dir)),
        Command::Explain {
            config,
            against,
            protocol,
            source,
            destination,
        } => printed(explain::explain(
            &config,
            against.as_deref(),
            protocol.zip(source).zip(destination),
        )),
        Command::Decap {
            interface,
            endpoint,
            log,
        } => run::decap(&interface, &endpoint, log, cli.log_format),
        Command::XdpLog {
            level,
            config,
            admin: to,
        } => printed(admin::xdp_log(level, config.as_deref(), to)),
        Command::Run { config, upgrade } => run::run(config.as_deref(), upgrade, cli.log_format),
        Command::Generate { what, out } => printed(generate::generate(what, &out)),
    }
}
