//! Hot reload (SIGHUP, `POST /reload`, `balancer reload`). The file is
//! loaded and validated first; an invalid one changes nothing and its
//! error (`file:line:column`) goes back to the caller. A valid one is applied
//! in an order that can still back out until the last step that could
//! fail: new listener sockets are bound, then the control loop carries
//! backend states over and rewrites the XDP maps, and only then do the
//! listeners, health checks and status views switch. Established
//! connections are never touched: they hold their backend, and a listener
//! or backend that is gone only stops getting new ones.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::listeners::{Bound, Listeners};
use crate::dataplane::xdp::plane::served_flags;
use crate::{
    config::{self, Config, model::Mode},
    discover::Registry,
    health::Monitor,
    publish::{Sources, View},
    reload::ReloadError,
    runtime::{LivePool, PoolState, control::Event},
    tls::{
        upstream::Connector,
        watch::{Look, Stamps, Watch},
    },
};

/// Live pools by name; a pool kept across a reload is the same `Arc`, so
/// listeners that keep it see its new state at once.
#[derive(Default)]
pub struct Pools(HashMap<String, Arc<LivePool>>);

impl Pools {
    /// The registry for `config` and its pools by index, reusing kept ones.
    #[must_use]
    pub fn plan(&self, config: &Config) -> (Pools, Vec<Arc<LivePool>>) {
        let by_index: Vec<Arc<LivePool>> = config
            .pools
            .iter()
            .map(|p| {
                self.0
                    .get(&p.name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ArcSwap::from_pointee(PoolState::new(p))))
            })
            .collect();
        let registry = config
            .pools
            .iter()
            .zip(&by_index)
            .map(|(p, live)| (p.name.clone(), live.clone()))
            .collect();
        (Pools(registry), by_index)
    }
}

/// What a reload changes, besides the control loop's own state.
pub struct Daemon {
    /// The config serving now: the file's, with discovered backends.
    pub config: Arc<Config>,
    /// The config as the file gives it.
    pub read: Arc<Config>,
    /// The discovery sources and their last good sets.
    pub discovery: Registry,
    /// TLS to each pool's backends, by pool index, as last read.
    pub upstream_tls: Vec<Option<Arc<Connector>>>,
    /// A discovered change the planes refused, to try again.
    pub discovery_pending: bool,
    /// The file it came from; `None` for the embedded demo.
    pub file: Option<PathBuf>,
    /// Bumped by every reload; events of older generations are ignored.
    pub generation: u64,
    /// Live pools.
    pub pools: Pools,
    /// The proxy listeners.
    pub listeners: Listeners,
    /// The health checks of the current config.
    pub monitor: Monitor,
    /// What status and metrics read.
    pub sources: Arc<Sources>,
    /// The control loop.
    pub events: mpsc::Sender<Event>,
    /// The certificate files of the running config, as last read.
    pub certificates: Watch,
    /// The admin API's listening socket, to hand a new daemon.
    pub admin: std::os::fd::OwnedFd,
}

impl Daemon {
    /// Looks at the certificate files (every [`crate::tls::watch::EVERY`]):
    /// a change that held since the last look is read and served, or
    /// logged when the new files cannot be served (the old keep serving).
    pub fn watch_certificates(&mut self) {
        let now = Stamps::of(&self.config);
        if now.is_empty() || self.certificates.look(now) != Look::Changed {
            return;
        }
        match self.listeners.refresh_tls(&self.config) {
            Ok(n) => info!(
                listeners = n,
                "certificate files changed on disk; new handshakes use them"
            ),
            Err(e) => {
                error!(error = %e, "certificate files changed on disk but cannot be served; fix them (the running certificates stay)");
            }
        }
    }

    /// Reloads the file; logs and counts the outcome.
    pub async fn reload(&mut self) -> Result<String, ReloadError> {
        let outcome = self.try_reload().await;
        match &outcome {
            Ok(text) => {
                self.sources.reloads_ok.fetch_add(1, Ordering::Relaxed);
                info!(generation = self.generation, "{text}");
            }
            Err(e) => {
                self.sources.reloads_failed.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "reload refused; the running config stays");
            }
        }
        outcome
    }

    async fn try_reload(&mut self) -> Result<String, ReloadError> {
        let file = self.file.clone().ok_or(ReloadError::NoFile)?;
        let read = Arc::new(config::load(&file)?);
        // Stamped before the files are read for the listeners, so a change
        // made meanwhile is seen at the next look.
        let stamps = Stamps::of(&read);
        let xdp_running = self.sources.xdp.is_some();
        if !xdp_running && let Some(l) = read.listeners.iter().find(|l| l.mode == Mode::Xdp) {
            return Err(ReloadError::NeedsXdp(l.name.clone()));
        }
        // Sources the file keeps bring their sets along; new ones report
        // once they run (started below, when the reload is in), and until
        // then their pools keep the discovered backends they serve.
        let new = Arc::new(self.discovery.merge(&read, xdp_running, Some(&self.config)));
        let xdp_served = served_flags(xdp_running, &new);
        let bound = self.listeners.bind(&new, &xdp_served)?;
        let later = restart_only(&self.config, &new);
        self.apply(read, new, xdp_served, bound).await?;
        self.discovery.follow(&self.read);
        self.publish_discovery();
        if !later.is_empty() {
            warn!(keys = ?later, "these settings take effect at the next restart");
        }
        self.certificates = Watch::new(stamps);
        let mut text = format!(
            "reloaded `{}`: {} listeners, {} pools",
            file.display(),
            self.config.listeners.len(),
            self.config.pools.len()
        );
        if !later.is_empty() {
            let _ = write!(text, "; at the next restart only: {}", later.join(", "));
        }
        Ok(text)
    }

    /// Serves `new` (the config `read` from the file, with the discovered
    /// backends merged in): the control loop carries the backend states
    /// over and rewrites the XDP maps, which may refuse and change
    /// nothing; then the listeners, health checks and status views switch.
    pub(super) async fn apply(
        &mut self,
        read: Arc<Config>,
        new: Arc<Config>,
        xdp_served: Vec<bool>,
        bound: Bound,
    ) -> Result<(), ReloadError> {
        let (pools, by_index) = self.pools.plan(&new);
        let generation = self.generation + 1;
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Event::Reload {
                config: new.clone(),
                pools: by_index.clone(),
                generation,
                reply,
            })
            .await
            .map_err(|_| ReloadError::Stopped)?;
        answer
            .await
            .map_err(|_| ReloadError::Stopped)?
            .map_err(ReloadError::Plane)?;
        // Nothing below can fail: the new config is in.
        self.generation = generation;
        self.pools = pools;
        self.upstream_tls.clone_from(&bound.upstream_tls);
        let stats = self
            .listeners
            .commit(&new, &by_index, generation, &xdp_served, bound);
        self.monitor = Monitor::start(&new, generation, &self.events, &self.upstream_tls);
        self.sources.view.store(Arc::new(View {
            config: new.clone(),
            listeners: stats,
            xdp_served,
            pools: by_index,
        }));
        self.config = new;
        self.read = read;
        Ok(())
    }

    /// Shows the discovery sources as they are now in status and metrics.
    pub(super) fn publish_discovery(&self) {
        self.sources
            .discovery
            .store(Arc::new(self.discovery.status()));
    }
}

/// Settings a running daemon keeps until it restarts.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.admin != new.admin {
        keys.push("admin.listen");
    }
    if old.admin_token_file != new.admin_token_file {
        keys.push("admin.token_file");
    }
    if old.admin_insecure != new.admin_insecure {
        keys.push("admin.insecure");
    }
    if old.admin_public_metrics != new.admin_public_metrics {
        keys.push("admin.public_metrics");
    }
    if old.state_dir != new.state_dir {
        keys.push("state_dir");
    }
    if old.demo_backends != new.demo_backends {
        keys.push("demo_backends");
    }
    let xdp = |c: &Config| {
        c.xdp
            .as_ref()
            .map(|x| (x.flow_table_size, x.pin_dir.clone()))
    };
    if xdp(old) != xdp(new) {
        keys.push("xdp.flow_table_size / xdp.pin_dir");
    }
    keys
}
