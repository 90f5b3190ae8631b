//! The contract between those who ask for a reload (the admin API; SIGHUP
//! is the daemon's own) and the daemon that carries it out: the request,
//! and every way a reload is refused, each with the HTTP status the admin
//! API answers. It lives apart from both so neither imports the other.

use std::{io, net::SocketAddr};

use tokio::sync::oneshot;

use crate::{
    config::{
        ConfigError,
        model::{Mode, Protocol},
    },
    runtime::plane::WriteError,
};

/// A reload request, answered with what changed or why nothing did.
pub type ReloadRequest = oneshot::Sender<Result<String, ReloadError>>;

/// Why a listener cannot be served; at start this stops the daemon, at a
/// reload it refuses the new config.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A listener's address could not be bound.
    #[error(
        "listener `{listener}`: cannot bind {protocol} `{address}`: {source} (is another process using it, or is the address not assigned to this host?)"
    )]
    Bind {
        /// Listener name.
        listener: String,
        /// Protocol.
        protocol: Protocol,
        /// Address.
        address: SocketAddr,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A listener moves between `http` and the byte proxy at the same
    /// address: the running socket serves the other, and a second cannot be
    /// bound beside it.
    #[error(
        "listener `{listener}` at `{address}` changes between `http` and another mode; that needs a restart (or a new address)"
    )]
    ModeChange {
        /// Listener name.
        listener: String,
        /// Its address.
        address: SocketAddr,
    },
    /// An `http` listener's access log cannot be opened.
    #[error(
        "listener `{listener}`: cannot open the access log `{}`: {source} (check the directory and its permissions)",
        path.display()
    )]
    AccessLog {
        /// Listener name.
        listener: String,
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// An `http` listener's TLS cannot be set up (a certificate file that
    /// cannot be read or served, a client CA that cannot be used).
    #[error("listener `{listener}`: {source}; the certificates already serving are kept")]
    Tls {
        /// Listener name.
        listener: String,
        /// What is wrong.
        #[source]
        source: crate::tls::TlsError,
    },
    /// A pool's TLS to its backends cannot be set up (a CA bundle or a
    /// client certificate that cannot be read or used).
    #[error("pool `{pool}`: TLS to its backends: {source}; the running settings are kept")]
    BackendTls {
        /// Pool name.
        pool: String,
        /// What is wrong.
        #[source]
        source: crate::tls::TlsError,
    },
    /// A socket passed by systemd under a listener's name cannot serve it.
    #[error("listener `{listener}`: the socket systemd passed for it: {reason}")]
    Inherited {
        /// Listener name.
        listener: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener's `proxy_engine: sockmap` cannot be set up on this host.
    #[error("listener `{listener}`: {reason}")]
    Engine {
        /// Listener name.
        listener: String,
        /// Why the sockmap relay could not be loaded.
        reason: String,
    },
    /// A listener asks for a data plane this build cannot serve.
    #[error(
        "listener `{listener}`: mode `{mode}` is not available yet in this version; use `proxy` or `auto`"
    )]
    Unsupported {
        /// Listener name.
        listener: String,
        /// Requested mode.
        mode: Mode,
    },
}

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The daemon serves the embedded demo: there is no file to re-read.
    #[error("the daemon runs the embedded demo, not a file; there is nothing to reload")]
    NoFile,
    /// The file is unreadable or invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A listener needs the XDP plane, which only a restart can start.
    #[error(
        "listener `{0}` needs the XDP plane, which is not running; starting it needs a restart"
    )]
    NeedsXdp(String),
    /// A new listener cannot be served.
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// A plane (the XDP maps) refused the new config.
    #[error("{0}")]
    Plane(#[source] WriteError),
    /// The control loop is gone: the daemon is stopping.
    #[error("the control loop has stopped")]
    Stopped,
}

impl ReloadError {
    /// The HTTP status the admin API answers with.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            // The file is wrong: the operator fixes it and asks again.
            ReloadError::Invalid(_) => 422,
            // The file is fine, but this daemon cannot take it as it runs.
            ReloadError::NoFile | ReloadError::NeedsXdp(_) | ReloadError::Listener(_) => 409,
            ReloadError::Plane(_) => 500,
            ReloadError::Stopped => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::{ListenerError, ReloadError};
    use crate::config::{self, model::Protocol};

    #[test]
    fn each_refusal_has_its_status() {
        let invalid = config::parse("version: 1\nlisteners: 3\n", "bad.yaml").expect_err("invalid");
        let bind = ListenerError::Bind {
            listener: "web".into(),
            protocol: Protocol::Tcp,
            address: "127.0.0.1:80".parse().expect("addr"),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let cases = [
            (ReloadError::Invalid(invalid), 422, "bad.yaml:2"),
            (ReloadError::NoFile, 409, "embedded demo"),
            (
                ReloadError::NeedsXdp("web".into()),
                409,
                "`web` needs the XDP plane",
            ),
            (
                ReloadError::Listener(bind),
                409,
                "cannot bind tcp `127.0.0.1:80`",
            ),
            (
                ReloadError::Plane("cannot write map `VIPS`".into()),
                500,
                "cannot write map `VIPS`",
            ),
            (ReloadError::Stopped, 503, "stopped"),
        ];
        for (e, status, text) in cases {
            assert_eq!(e.status(), status, "{e}");
            assert!(e.to_string().contains(text), "{e} lacks {text}");
        }
    }
}
