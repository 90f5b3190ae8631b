//! `balancer backend`, `guard`, `announce`, `xdp-log` and `reload`: the commands that ask a running
//! daemon through its admin API. Each builds the [`Route`] the daemon's
//! parser reads and sends it through [`client::send`], which also turns a
//! refusal into an error; what is left here is finding the daemon and
//! turning its JSON answer into the lines an operator reads.

use std::{net::SocketAddr, path::Path};

use anyhow::Context as _;
use balancer::{
    admin::{self, client, routes::Route},
    announce::{control::Command, report::Report},
    config::{self, values},
    runtime::{
        control::Action,
        guard_lists::{Added, List, ListChange, Scope},
    },
};

use super::{AnnounceAction, BackendAction, GuardAction, GuardList};

/// The daemon to ask: its admin address and bearer token.
struct Daemon {
    address: SocketAddr,
    token: Option<String>,
}

impl Daemon {
    /// `--admin`, else the config's `admin.listen`, else the default
    /// address; the token from the config's `admin.token_file`.
    fn find(file: Option<&Path>, admin: Option<SocketAddr>) -> anyhow::Result<Self> {
        let config = file.map(config::load).transpose()?;
        let address = admin
            .or(config.as_ref().map(|c| c.admin))
            .unwrap_or_else(|| config::limits::ADMIN.parse().expect("a valid default"));
        let token = config
            .as_ref()
            .and_then(|c| c.admin_token_file.as_deref())
            .map(|p| {
                admin::read_token(p).with_context(|| format!("admin.token_file `{}`", p.display()))
            })
            .transpose()?;
        Ok(Self { address, token })
    }

    /// The body of the daemon's 200 answer to `route`.
    fn ask(&self, route: &Route) -> anyhow::Result<serde_json::Value> {
        Ok(client::send(self.address, route, self.token.as_deref())?)
    }
}

/// `reload`: what the daemon says changed.
pub(crate) fn reload(file: Option<&Path>, admin: Option<SocketAddr>) -> anyhow::Result<String> {
    let body = Daemon::find(file, admin)?.ask(&Route::Reload)?;
    Ok(line(body["reloaded"].as_str().unwrap_or("reloaded")))
}

/// `backend`: the backend's new state.
pub(crate) fn backend(
    action: BackendAction,
    pool: &str,
    address: SocketAddr,
    weight: Option<u32>,
    file: Option<&Path>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let daemon = Daemon::find(file, admin)?;
    let action = match action {
        BackendAction::Drain => Action::Drain,
        BackendAction::Enable => Action::Enable,
        BackendAction::Disable => Action::Disable,
        BackendAction::Weight => Action::Weight(weight.unwrap_or_default()),
    };
    let body = daemon.ask(&Route::Backend {
        pool: pool.to_owned(),
        backend: address,
        action,
    })?;
    let state = body["state"].as_str().unwrap_or("?");
    Ok(line(&format!("{pool} {address}: {state}")))
}

/// `guard`: every list as it stands after the change, headed by whether
/// the change changed anything.
pub(crate) fn guard(
    action: GuardAction,
    entry: Option<(GuardList, String)>,
    listener: Option<String>,
    file: Option<&Path>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let daemon = Daemon::find(file, admin)?;
    let change = match (action, entry) {
        (GuardAction::List, _) => ListChange::Show,
        (_, None) => anyhow::bail!("`add` and `remove` need a list and a CIDR"),
        (action, Some((list, cidr))) => {
            let entry = Added {
                scope: listener.map_or(Scope::Global, Scope::Listener),
                list: match list {
                    GuardList::Deny => List::Deny,
                    GuardList::Allow => List::Allow,
                },
                // The daemon would refuse a bad prefix with this same text.
                cidr: values::cidr(&cidr).map_err(anyhow::Error::msg)?,
            };
            if action == GuardAction::Add {
                ListChange::Add(entry)
            } else {
                ListChange::Remove(entry)
            }
        }
    };
    let show = change == ListChange::Show;
    let body = daemon.ask(&Route::Guard(change))?;
    let mut out = client::render_lists(&body["lists"]);
    if !show {
        let what = if body["changed"].as_bool() == Some(true) {
            "changed"
        } else {
            "unchanged: the entry was already there"
        };
        out = format!("{what}\n{out}");
    }
    Ok(line(out.trim_end()))
}

/// `announce`: each VIP's announcement after the action, and why.
pub(crate) fn announce(
    action: AnnounceAction,
    file: Option<&Path>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let command = match action {
        AnnounceAction::Status => None,
        AnnounceAction::Withdraw => Some(Command::Withdraw),
        AnnounceAction::Restore => Some(Command::Restore),
    };
    let body = Daemon::find(file, admin)?.ask(&Route::Announce(command))?;
    let report: Report = serde_json::from_value(body)
        .context("the daemon's answer is not an announcement report")?;
    Ok(report.render())
}

/// `xdp-log`: the level the XDP program reports at, and its lines so far.
pub(crate) fn xdp_log(
    level: Option<config::model::KernelLog>,
    file: Option<&Path>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let body = Daemon::find(file, admin)?.ask(&Route::XdpLog(level))?;
    let status: balancer::status::KernelLogStatus = serde_json::from_value(body)
        .context("the daemon's answer is not an XDP diagnostics report")?;
    let lines = if status.lines.is_empty() {
        "no lines yet".to_owned()
    } else {
        let by: Vec<String> = status
            .lines
            .iter()
            .map(|(l, n)| format!("{n} {l}"))
            .collect();
        format!("lines: {}", by.join(", "))
    };
    Ok(line(&format!(
        "XDP diagnostics: {}; {lines}; {} suppressed by the rate limit",
        status.level, status.suppressed
    )))
}

/// A one-answer command's output: its text and a newline.
fn line(text: &str) -> String {
    format!("{text}\n")
}
