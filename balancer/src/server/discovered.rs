//! A discovery source reported: when its set changed, the pools that
//! follow it are rebuilt from the file's config and every source's last
//! good set, and served through the same path as a reload
//! ([`Daemon::apply`]): health state carried by address, new backends of
//! checked pools checked before they take traffic, the XDP maps rewritten
//! by backend id (so the Maglev ring moves only the slots it must), and
//! the proxies swapped. Listeners and certificate files are not touched.

use std::sync::Arc;

use tracing::{error, info};

use super::reload::Daemon;
use crate::discover::{Report, diff};

impl Daemon {
    /// Takes `report`; applies the change it brings, if any. A change the
    /// planes refuse is logged, and tried again at the source's next round.
    pub async fn discovered(&mut self, report: Report) {
        let changed = self.discovery.take(report);
        if changed || self.discovery_pending {
            self.rebuild().await;
        }
        self.publish_discovery();
    }

    async fn rebuild(&mut self) {
        let xdp_running = self.sources.xdp.is_some();
        let new = Arc::new(
            self.discovery
                .merge(&self.read, xdp_running, Some(&self.config)),
        );
        let changes = diff::pools(&self.config, &new);
        if changes.is_empty() {
            self.discovery_pending = false;
            return;
        }
        // Ports are kept to the XDP listeners', so the same listeners stay
        // with the kernel plane.
        let xdp_served = self.sources.view.load().xdp_served.clone();
        let bound = self.listeners.rebound(&new, self.upstream_tls.clone());
        match self.apply(self.read.clone(), new, xdp_served, bound).await {
            Ok(()) => {
                self.discovery_pending = false;
                for c in changes {
                    info!(pool = %c.pool, generation = self.generation, "discovered backends changed: {c}");
                }
            }
            Err(e) => {
                self.discovery_pending = true;
                error!(error = %e, "cannot serve the discovered backends; the pools keep the ones they have, and the change is tried again at the next round");
            }
        }
    }
}
