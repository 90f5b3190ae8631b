//! The command line's shape (clap): every subcommand, flag and help text.
//! Only parsing lives here, so `--help` reads as one file; the modules
//! beside it act on what was parsed.

use std::path::PathBuf;

use balancer::logging::LogFormat;
use clap::{Parser, Subcommand, ValueEnum};

/// L4/L7 load balancer with an XDP fast path.
#[derive(Debug, Parser)]
#[command(name = "balancer", version, about)]
pub(crate) struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a config file, or the embedded demo default when none is given.
    Run {
        /// Config file (YAML).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Take the listening sockets over from the daemon running with the
        /// same `state_dir`, which then stops accepting, drains and exits.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and print a summary; exit 1 on any error.
    Check {
        /// Config file (YAML).
        file: PathBuf,
    },
    /// Drain, enable, disable or reweigh one backend of the running daemon
    /// (through its admin API).
    Backend {
        /// What to do.
        #[arg(value_enum)]
        action: BackendAction,
        /// Pool name.
        pool: String,
        /// Backend address, `IP:port`.
        address: std::net::SocketAddr,
        /// New weight (0 to the config's ceiling, 10000), for `weight`.
        #[arg(required_if_eq("action", "weight"))]
        weight: Option<u32>,
        /// Config file to read `admin.listen` and `admin.token_file` from.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Admin API address, over the config's.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// Show or change the running daemon's guard allow/deny lists (through
    /// its admin API). Entries added here last until removed or the daemon
    /// restarts; put permanent ones in the config file.
    Guard {
        /// What to do.
        #[arg(value_enum)]
        action: GuardAction,
        /// Which list, for `add` and `remove`.
        #[arg(value_enum, required_if_eq_any([("action", "add"), ("action", "remove")]))]
        list: Option<GuardList>,
        /// The prefix, like `198.18.5.0/24` or `fd00:66::/64` (a bare
        /// address is one host), for `add` and `remove`.
        #[arg(required_if_eq_any([("action", "add"), ("action", "remove")]))]
        cidr: Option<String>,
        /// The listener whose own list to change, instead of the global one.
        #[arg(long)]
        listener: Option<String>,
        /// Config file to read `admin.listen` and `admin.token_file` from.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Admin API address, over the config's.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// Show this host's VIP announcements and why, or withdraw the host for
    /// maintenance (every VIP off the announcement interface, so BGP moves
    /// traffic to the other hosts; lasts across restarts) and restore it
    /// (through the admin API).
    Announce {
        /// What to do.
        #[arg(value_enum)]
        action: AnnounceAction,
        /// Config file to read `admin.listen` and `admin.token_file` from.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Admin API address, over the config's.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// Show or set the level the running daemon's XDP program reports rare
    /// events at (failed map writes, states that should never occur) into
    /// the daemon's log, through its admin API. Lasts until the daemon
    /// restarts or a reload changes `xdp.log`.
    XdpLog {
        /// The new level; without it, the current one and the line counts.
        #[arg(value_enum)]
        level: Option<balancer::config::model::KernelLog>,
        /// Config file to read `admin.listen` and `admin.token_file` from.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Admin API address, over the config's.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// Make the running daemon re-read its config file (through its admin
    /// API); prints what changed, or the file's errors.
    Reload {
        /// Config file to read `admin.listen` and `admin.token_file` from.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Admin API address, over the config's.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
    /// Print the running daemon's listeners, planes and counters.
    Status {
        /// The daemon's `state_dir`.
        #[arg(long, default_value = balancer::config::STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Which backend a flow reaches (asked of the real XDP program and of the
    /// proxy plane), or, with --against, how a config change moves ring slots.
    Explain {
        /// Config file (YAML).
        #[arg(short, long)]
        config: PathBuf,
        /// Compare with this config instead of explaining a flow.
        #[arg(long, conflicts_with_all = ["protocol", "source", "destination"])]
        against: Option<PathBuf>,
        /// `tcp` or `udp`.
        #[arg(required_unless_present = "against")]
        protocol: Option<balancer::config::model::Protocol>,
        /// Client address, `IP:port`.
        #[arg(required_unless_present = "against")]
        source: Option<std::net::SocketAddr>,
        /// VIP address, `IP:port`.
        #[arg(required_unless_present = "against")]
        destination: Option<std::net::SocketAddr>,
    },
    /// Stop the XDP program that outlives the daemon: remove its pinned
    /// link (and SYN-cookie program array) from the config's `xdp.pin_dir`.
    /// A running daemon keeps its program until it exits.
    Detach {
        /// Config file (YAML) naming the pin directory.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// On a backend: unwrap the balancer's IP-in-IP tunnels arriving on an
    /// interface (this kernel may lack the `ipip` module).
    Decap {
        /// Interface the tunnels arrive on.
        #[arg(short, long)]
        interface: String,
        /// Tunnel endpoint addresses to accept (default: the interface's own).
        #[arg(long)]
        endpoint: Vec<std::net::IpAddr>,
        /// What the decapsulator reports into this log (packets it could
        /// not unwrap).
        #[arg(long, value_enum, default_value_t = balancer::config::model::KernelLog::Off)]
        log: balancer::config::model::KernelLog,
    },
    /// Write the man pages or a shell's completions, made from this very
    /// command line (`cargo xtask dist` packages them).
    #[command(hide = true)]
    Generate {
        /// `man`, or the shell to complete for.
        what: Generated,
        /// Directory to write into (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `balancer backend` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendAction {
    /// No new flows; established ones carry on.
    Drain,
    /// Back to following its health checks.
    Enable,
    /// Out of rotation.
    Disable,
    /// Set a new weight.
    Weight,
}

/// What `balancer guard` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GuardAction {
    /// Print every list, from the file and added at runtime.
    List,
    /// Add an entry.
    Add,
    /// Remove an entry added at runtime.
    Remove,
}

/// What `balancer announce` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum AnnounceAction {
    /// Print each VIP's announcement and why.
    Status,
    /// Take every VIP off: the router moves traffic to the other hosts.
    Withdraw,
    /// Put back the VIPs that qualify.
    Restore,
}

/// Which guard list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GuardList {
    /// Sources refused.
    Deny,
    /// The only sources admitted, once the list has an entry.
    Allow,
}

/// What `balancer generate` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Generated {
    /// `balancer.1` and a page per subcommand (`balancer-run.1`, ...).
    Man,
    /// bash completions (`balancer.bash`).
    Bash,
    /// zsh completions (`_balancer`).
    Zsh,
    /// fish completions (`balancer.fish`).
    Fish,
}
