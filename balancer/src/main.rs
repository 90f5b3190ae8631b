//! `balancer`: parse the command line, load the config, run.

use std::process::ExitCode;

use anyhow::Context as _;
use balancer::{
    cli::{BackendAction, Cli, Command, GuardAction, GuardList},
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
        Command::Backend {
            action,
            pool,
            address,
            weight,
            config: file,
            admin,
        } => answer(backend(
            action,
            &pool,
            address,
            weight,
            file.as_deref(),
            admin,
        )),
        Command::Reload {
            config: file,
            admin,
        } => answer(reload(file.as_deref(), admin)),
        Command::Guard {
            action,
            list,
            cidr,
            listener,
            config: file,
            admin,
        } => answer(guard(
            action,
            list.zip(cidr),
            listener.as_deref(),
            file.as_deref(),
            admin,
        )),
        Command::Status { state_dir } => printed(
            balancer::status::read(&state_dir)
                .map(|s| balancer::status::render(&s, balancer::status::now_ms())),
        ),
        Command::Explain {
            config: file,
            against,
            protocol,
            source,
            destination,
        } => printed(explain(
            &file,
            against.as_deref(),
            protocol.zip(source).zip(destination),
        )),
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

/// Prints a report as it is, or its error; the exit code says which.
fn printed<E: std::fmt::Display>(r: Result<String, E>) -> ExitCode {
    match r {
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

/// Prints a command's answer, or its error; the exit code says which.
fn answer(r: anyhow::Result<String>) -> ExitCode {
    match r {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The admin API's address and token: `admin` or the config's address,
/// else the default; the config's token.
fn admin_target(
    file: Option<&std::path::Path>,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<(std::net::SocketAddr, Option<String>)> {
    let config = file.map(config::load).transpose()?;
    let to = admin
        .or(config.as_ref().map(|c| c.admin))
        .unwrap_or_else(|| config::limits::ADMIN.parse().expect("a valid default"));
    let token = config
        .as_ref()
        .and_then(|c| c.admin_token_file.as_deref())
        .map(|p| {
            balancer::admin::read_token(p)
                .with_context(|| format!("admin.token_file `{}`", p.display()))
        })
        .transpose()?;
    Ok((to, token))
}

fn reload(
    file: Option<&std::path::Path>,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<String> {
    let (to, token) = admin_target(file, admin)?;
    let (code, body) = balancer::admin::client::request(to, "POST", "/reload", token.as_deref())?;
    if code == 200 {
        Ok(body["reloaded"].as_str().unwrap_or("reloaded").to_owned())
    } else {
        anyhow::bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("the admin API refused the reload")
        )
    }
}

fn guard(
    action: GuardAction,
    entry: Option<(GuardList, String)>,
    listener: Option<&str>,
    file: Option<&std::path::Path>,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<String> {
    use balancer::admin::client;
    let (to, token) = admin_target(file, admin)?;
    let scope = listener.map_or_else(String::new, |l| format!("/listeners/{l}"));
    let (method, path) = match (action, entry) {
        (GuardAction::List, _) => ("GET", "/guard".to_owned()),
        (_, None) => anyhow::bail!("`add` and `remove` need a list and a CIDR"),
        (a, Some((list, cidr))) => {
            let list = match list {
                GuardList::Deny => "deny",
                GuardList::Allow => "allow",
            };
            let method = if a == GuardAction::Add {
                "POST"
            } else {
                "DELETE"
            };
            (method, format!("{scope}/guard/{list}/{cidr}"))
        }
    };
    let (code, body) = client::request(to, method, &path, token.as_deref())?;
    if code != 200 {
        anyhow::bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("the admin API refused the request")
        );
    }
    let mut out = client::render_lists(&body["lists"]);
    if action != GuardAction::List {
        let what = if body["changed"].as_bool() == Some(true) {
            "changed"
        } else {
            "unchanged: the entry was already there"
        };
        out = format!("{what}\n{out}");
    }
    Ok(out.trim_end().to_owned())
}

fn backend(
    action: BackendAction,
    pool: &str,
    address: std::net::SocketAddr,
    weight: Option<u32>,
    file: Option<&std::path::Path>,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<String> {
    use balancer::admin::client;
    let (to, token) = admin_target(file, admin)?;
    let verb = match action {
        BackendAction::Drain => "drain".to_owned(),
        BackendAction::Enable => "enable".to_owned(),
        BackendAction::Disable => "disable".to_owned(),
        BackendAction::Weight => format!("weight/{}", weight.unwrap_or_default()),
    };
    let path = format!("/backends/{pool}/{}/{verb}", client::path_segment(address));
    let (code, body) = client::request(to, "POST", &path, token.as_deref())?;
    if code == 200 {
        Ok(format!(
            "{pool} {address}: {}",
            body["state"].as_str().unwrap_or("?")
        ))
    } else {
        anyhow::bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("the admin API refused the request")
        )
    }
}

fn run(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = if let Some(f) = file {
        config::load(f)?
    } else {
        tracing::info!("no config file given: serving the embedded demo (config/default.yaml)");
        config::embedded_default()?
    };
    runtime()?.block_on(server::run(config, file.map(std::path::Path::to_path_buf)))?;
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
