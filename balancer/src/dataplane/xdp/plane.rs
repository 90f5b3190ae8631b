//! The XDP plane of a running daemon: which listeners the kernel serves,
//! the program loaded with their tables, and where it is attached. `xdp`
//! listeners must be served here; `auto` listeners are when they qualify
//! (a `maglev` pool whose backends serve the listener's port) and the
//! program attaches, and fall back to the proxy plane otherwise.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use balancer_common::{guard::UNKNOWN_VIP, stats::GUARD_REASONS};
use tracing::{info, warn};

use super::{
    Attached, PlaneError, XdpProgram,
    adopt::{self, Adopted, Inputs},
    cookies::{Cookies, TcpSysctls},
    diag::{Reports, bridge::Counts},
    iface::Interface,
    pins::Pins,
    program::LimitedSource,
    routes::Routes,
    tables::{BackendIds, Egress, Tables},
};
use crate::{
    config::{
        Config,
        model::{Algorithm, KernelLog, Listener, Mode},
    },
    runtime::{
        plane::{Plane, WriteError},
        state::Status,
    },
};

/// The running XDP plane.
pub struct XdpPlane {
    program: XdpProgram,
    /// Held for the lock on the pin directory.
    pins: Pins,
    /// Set once the pin directory was handed to a new daemon (`run
    /// --upgrade`): the maps are its to write from then on.
    handed: bool,
    tables: Tables,
    ids: BackendIds,
    served: Vec<usize>,
    egress: Egress,
    routes: Routes,
    /// SYN cookie settings, when listeners ask for them and the host allows.
    cookies: Option<Cookies>,
    /// How the program is attached.
    pub attached: Attached,
    /// The interface it is attached to.
    pub interface: String,
    /// Its pinned link, and what became of an earlier run's program.
    pub attachment: super::link::Attachment,
    /// How this start found the maps and the program, for status.
    pub started: String,
    /// What the program reports, and at which level.
    diag: Reports,
    /// `xdp.log` as the config last said: a reload changes the level only
    /// when the file does, so a level set through the API lasts until then.
    configured_log: KernelLog,
}

/// Whether the kernel plane can serve `l` at all (ignoring attach success):
/// a Maglev pool whose backends serve the listener's port, and no PROXY
/// header to read or send.
#[must_use]
pub fn qualifies(config: &Config, l: &Listener) -> bool {
    let Some(pool) = l.pool.map(|p| &config.pools[p]) else {
        return false;
    };
    // Headers in or out, and ClientHellos routed by SNI, need a proxy
    // that reads and writes the stream.
    config.xdp.is_some()
        && pool.proxy_protocol.is_none()
        && l.accept_proxy_from.is_empty()
        && l.sni_routes.is_empty()
        && pool.algorithm == Algorithm::Maglev
        && pool
            .backends
            .iter()
            .all(|b| b.address.port() == l.address.port())
}

/// The listeners of `config` the kernel plane serves when it runs: `xdp`
/// and `auto` listeners that qualify.
#[must_use]
pub fn served_in(config: &Config) -> Vec<usize> {
    config
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.mode, Mode::Xdp | Mode::Auto) && qualifies(config, l))
        .map(|(i, _)| i)
        .collect()
}

/// Which listeners of `config` the XDP plane serves, when it runs.
#[must_use]
pub fn served_flags(xdp_running: bool, config: &Config) -> Vec<bool> {
    let served = if xdp_running {
        served_in(config)
    } else {
        Vec::new()
    };
    (0..config.listeners.len())
        .map(|i| served.contains(&i))
        .collect()
}

impl XdpPlane {
    /// Starts the plane for the listeners of `config` it should serve;
    /// `None` when there are none. `inherited` is the pin directory's lock
    /// handed over by the daemon this one upgrades.
    pub fn start(
        config: &Config,
        inherited: Option<std::os::fd::OwnedFd>,
    ) -> Result<Option<Self>, PlaneError> {
        let level = config.xdp.as_ref().map_or(KernelLog::Off, |x| x.log);
        Self::start_with(config, inherited, Arc::default(), level)
    }

    /// As [`Self::start`], counting kernel diagnostics into `counts` and
    /// reporting at `level`.
    fn start_with(
        config: &Config,
        inherited: Option<std::os::fd::OwnedFd>,
        counts: Arc<Counts>,
        level: KernelLog,
    ) -> Result<Option<Self>, PlaneError> {
        let Some(xdp) = &config.xdp else {
            return Ok(None);
        };
        // The plane runs whenever there is an `xdp` section: besides the
        // listeners it serves, it guards those served in userspace.
        let served = served_in(config);
        let iface = Interface::read(&xdp.interface)?;
        let listeners: Vec<&Listener> = served.iter().map(|&i| &config.listeners[i]).collect();
        let routes = Routes::resolve(&iface, &listeners, config, None)?;
        let unspecified4 = IpAddr::from([0u8; 4]);
        let unspecified6 = IpAddr::from([0u16; 8]);
        let egress = Egress {
            forwarding: xdp.forwarding,
            mtu: routes.mtu(),
            ports: routes.ports(),
            ipip_src4: match iface.address_like(unspecified4) {
                Some(IpAddr::V4(a)) => a.octets(),
                _ => [0; 4],
            },
            ipip_src6: match iface.address_like(unspecified6) {
                Some(IpAddr::V6(a)) => a.octets(),
                _ => [0; 16],
            },
        };
        let cookies = cookie_settings(config, iface.mtu);
        let pins = Pins::open(&xdp.pin_dir, inherited)?;
        let adopted = adopt::start(
            &pins,
            &Inputs::of(config, &served, &egress, &|ip| routes.hop(ip), cookies),
            xdp.flow_table_size.get(),
        )?;
        for why in &adopted.replaced {
            warn!(pin_dir = %xdp.pin_dir.display(), "{why}");
        }
        if adopted.resumed {
            info!(pin_dir = %xdp.pin_dir.display(), flows = adopted.kept_flows, "re-adopted the pinned XDP maps: established flows keep their backends");
        }
        let adopted_flows = adopted.resumed.then_some(adopted.kept_flows);
        let Adopted {
            mut program,
            tables,
            ids,
            migrating,
            ..
        } = adopted;
        // Before attaching, so the first packet's reports are read.
        let diag = Reports::start(&mut program, "balancer", counts, level);
        let attachment = super::link::attach(&mut program, &iface, &pins)?;
        // The new program runs already: a failed catch-up costs only the
        // flows placed in the last moments, which the ring places again.
        let caught_up = match migrating.then(|| super::migrate::finish(&pins, &mut program)) {
            Some(Ok(n)) => {
                info!(
                    flows = adopted_flows.unwrap_or(0),
                    placed_meanwhile = n,
                    "migrated the flow table an older build pinned into this build's layout"
                );
                Some(n)
            }
            Some(Err(e)) => {
                warn!(error = %e, "the flow table migration could not finish");
                Some(0)
            }
            None => None,
        };
        let started = started_note(adopted_flows, caught_up, attachment.handover);
        let attached = attachment.attached;
        if attached == Attached::Generic {
            warn!(interface = %iface.name, "XDP attached in GENERIC mode: the driver has no native XDP; packets are balanced correctly but without the fast path's speed");
        }
        Ok(Some(Self {
            program,
            pins,
            handed: false,
            egress,
            routes,
            cookies,
            tables,
            ids,
            served,
            attached,
            interface: iface.name,
            attachment,
            started,
            diag,
            configured_log: xdp.log,
        }))
    }

    /// Hands the maps to a new daemon taking over (`run --upgrade`): from
    /// now on this one writes nothing, so the two never undo each other's
    /// tables. Returns the pin directory and a handle on its lock, to send.
    pub fn hand_over(&mut self) -> std::io::Result<(std::path::PathBuf, std::os::fd::OwnedFd)> {
        let lock = self.pins.share()?;
        self.handed = true;
        Ok((self.pins.dir().to_path_buf(), lock))
    }

    /// Takes the maps back after an upgrade that failed before it served:
    /// the new daemon may have rewritten them and swapped its program in,
    /// so this one starts over on the pins as a restart would (flows kept,
    /// its own program swapped back into the link), then writes `status`.
    pub fn take_back(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), PlaneError> {
        if !self.handed {
            return Ok(());
        }
        let lock = self.pins.share().map_err(|source| {
            PlaneError::Pin(super::pins::PinError::Io {
                path: self.pins.dir().to_path_buf(),
                source,
            })
        })?;
        let counts = self.diag.counts_handle();
        let level = self.diag.level();
        let mut fresh =
            tokio::task::block_in_place(|| Self::start_with(config, Some(lock), counts, level))?
                .ok_or_else(|| {
                    PlaneError::NeedsRestart("the config has no `xdp` section".to_owned())
                })?;
        fresh.update(config, status)?;
        fresh.started.clone_from(&self.started);
        fresh.configured_log = self.configured_log;
        *self = fresh;
        info!("took the XDP maps back from an upgrade that did not finish");
        Ok(())
    }

    /// Next hop `ip` on interface `index` answers at `mac` now (the
    /// kernel's neighbour table says so): the routes of the backends behind
    /// it take the new MAC, and the next [`Self::update`] writes them.
    /// Whether any changed; never after the maps were handed over.
    pub fn neighbour_changed(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> bool {
        !self.handed && self.routes.set_mac(index, ip, mac)
    }

    /// Asks the kernel again for every next hop's MAC (after neighbour
    /// changes were lost); whether any changed.
    pub fn refresh_neighbours(&mut self) -> bool {
        let Ok(mut netlink) = super::netlink::Netlink::open() else {
            return false;
        };
        let hops: Vec<(u32, IpAddr)> = self.routes.next_hops().collect();
        let mut changed = false;
        for (index, ip) in hops {
            if let Ok(Some(mac)) = netlink.neighbour(index, ip) {
                changed |= self.neighbour_changed(index, ip, mac);
            }
        }
        changed
    }

    /// The level the program reports at.
    #[must_use]
    pub fn kernel_log(&self) -> KernelLog {
        self.diag.level()
    }

    /// Makes the program report at `level` from now on (the admin API).
    pub fn set_kernel_log(&mut self, level: KernelLog) -> Result<(), PlaneError> {
        if self.handed {
            return Err(PlaneError::NeedsRestart(
                "this daemon is handing its XDP maps to a new one (`run --upgrade`); set the level on that one".to_owned(),
            ));
        }
        let before = self.diag.level();
        self.diag.set(level)?;
        if before != level {
            info!(from = %before, to = %level, "XDP diagnostics level changed");
        }
        Ok(())
    }

    /// Kernel diagnostic lines written and suppressed so far.
    #[must_use]
    pub fn kernel_log_counts(&self) -> &Counts {
        self.diag.counts()
    }

    /// Whether listener `index` is served here.
    #[must_use]
    pub fn serves(&self, index: usize) -> bool {
        self.served.contains(&index)
    }

    /// The loaded program (counters, tests).
    #[must_use]
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// Guard drops by listener name, in [`balancer_common::Counter::GUARD`]
    /// order, for listeners that have any; drops of flows recorded by an
    /// older program are under `(unknown)`.
    #[must_use]
    pub fn guard_drops(&self) -> Vec<(String, [u64; GUARD_REASONS as usize])> {
        let unknown = (UNKNOWN_VIP, "(unknown)".to_owned());
        self.tables
            .guard
            .names
            .iter()
            .chain(std::iter::once(&unknown))
            .filter_map(|(id, name)| {
                let drops = self.program.guard_counters(*id).ok()?;
                drops.iter().any(|d| *d > 0).then(|| (name.clone(), drops))
            })
            .collect()
    }

    /// The sources the per-source limits dropped in the last 10 s, most
    /// drops first, at most 10.
    #[must_use]
    pub fn limited(&self) -> Vec<LimitedSource> {
        self.program
            .limited_sources(std::time::Duration::from_secs(10), 10)
            .unwrap_or_default()
    }

    /// Current tables and the id allocator, for a later reload.
    #[must_use]
    pub fn state(&self) -> (&Tables, &BackendIds) {
        (&self.tables, &self.ids)
    }

    /// Moves the plane to a reloaded `config` with backends in `status`:
    /// the listeners it serves, their backends' routes (only new addresses
    /// are resolved) and the maps, diffed. What needs a new program or
    /// another interface is refused and changes nothing.
    pub fn reload(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), PlaneError> {
        if self.handed {
            return Err(PlaneError::NeedsRestart(
                "this daemon is handing its XDP maps to a new one (`run --upgrade`); reload that one".to_owned(),
            ));
        }
        let xdp = config.xdp.as_ref().ok_or_else(|| {
            PlaneError::NeedsRestart(
                "the new config has no `xdp` section; stopping the XDP plane needs a restart"
                    .to_owned(),
            )
        })?;
        if xdp.interface != self.interface {
            return Err(PlaneError::NeedsRestart(format!(
                "xdp.interface changed from `{}` to `{}`; moving the XDP plane needs a restart",
                self.interface, xdp.interface
            )));
        }
        let served = served_in(config);
        let listeners: Vec<&Listener> = served.iter().map(|&i| &config.listeners[i]).collect();
        let iface = Interface::read(&self.interface)?;
        // Resolving a new backend may wait for ARP; keep the runtime's other
        // tasks running meanwhile.
        let routes = tokio::task::block_in_place(|| {
            Routes::resolve(&iface, &listeners, config, Some(&self.routes))
        })?;
        let egress = Egress {
            forwarding: xdp.forwarding,
            mtu: routes.mtu(),
            ports: routes.ports(),
            ..self.egress.clone()
        };
        let cookies = cookie_settings(config, iface.mtu);
        self.tables = write(
            &mut self.program,
            &self.tables,
            &mut self.ids,
            &Inputs::of(config, &served, &egress, &|ip| routes.hop(ip), cookies),
            status,
        )?;
        self.served = served;
        self.cookies = cookies;
        self.egress = egress;
        self.routes = routes;
        if xdp.log != self.configured_log {
            self.set_kernel_log(xdp.log)?;
            self.configured_log = xdp.log;
        }
        Ok(())
    }

    /// Rewrites the maps for backends now in `status` (by pool, then
    /// backend, in `config` order): rings without the backends that take no
    /// new flows, entries without those that keep none. Only what changed is
    /// written.
    pub fn update(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), PlaneError> {
        // The new daemon keeps the maps in step from its own health checks;
        // should the upgrade fail, `take_back` writes what is current.
        if self.handed {
            return Ok(());
        }
        let routes = &self.routes;
        self.tables = write(
            &mut self.program,
            &self.tables,
            &mut self.ids,
            &Inputs::of(
                config,
                &self.served,
                &self.egress,
                &|ip| routes.hop(ip),
                self.cookies,
            ),
            status,
        )?;
        Ok(())
    }
}

/// How a start found the maps and the program, for status: `kept` flows
/// re-adopted (`None`: fresh maps), `caught_up` placed during a layout
/// migration, and what became of an earlier program.
fn started_note(
    kept: Option<usize>,
    caught_up: Option<usize>,
    handover: super::link::Handover,
) -> String {
    let maps = if let Some(kept) = kept {
        let migrated = caught_up.map_or(String::new(), |n| {
            format!(", migrated from the older layout with {n} placed meanwhile")
        });
        format!("re-adopted the pinned XDP maps ({kept} flows kept{migrated})")
    } else {
        "fresh XDP maps".to_owned()
    };
    let program = match handover {
        super::link::Handover::Fresh => "program attached".to_owned(),
        super::link::Handover::Replaced { previous } => {
            format!("replaced program {previous} in its pinned link")
        }
        super::link::Handover::Moved { from } => {
            format!("program moved here from interface {from}")
        }
    };
    format!("{maps}; {program}")
}

/// SYN cookie settings for the listeners of `config` that ask for them,
/// on an XDP interface of `mtu`; `None`, with the reason logged, when none
/// asks or this host's TCP settings would make the kernel refuse them.
fn cookie_settings(config: &Config, mtu: u32) -> Option<Cookies> {
    let asking: Vec<&str> = config
        .listeners
        .iter()
        .filter(|l| l.guard.cookies_above.is_some())
        .map(|l| l.name.as_str())
        .collect();
    if asking.is_empty() {
        return None;
    }
    let sysctls = match TcpSysctls::read() {
        Ok(s) => s,
        Err(e) => {
            warn!(listeners = ?asking, error = %e, "cannot read the TCP sysctls; XDP SYN cookies stay off and SYNs go to the listening sockets");
            return None;
        }
    };
    match sysctls.cookies(mtu) {
        Ok(c) => {
            if let Some(why) = sysctls.degraded() {
                warn!(listeners = ?asking, "{why}");
            }
            Some(c)
        }
        Err(why) => {
            warn!(listeners = ?asking, "XDP SYN cookies stay off and SYNs go to the listening sockets: {why}");
            None
        }
    }
}

/// Builds the tables `inputs` describe with backends in `status` (by pool,
/// then backend) and writes what differs from `old` into `program`'s maps;
/// returns the new tables.
fn write(
    program: &mut XdpProgram,
    old: &Tables,
    ids: &mut BackendIds,
    inputs: &Inputs<'_>,
    status: &[Vec<Status>],
) -> Result<Tables, PlaneError> {
    let mut tables = Tables::build_with(
        &inputs.listeners(),
        inputs.pools,
        &|p, b| {
            status
                .get(p)
                .and_then(|s| s.get(b))
                .copied()
                .unwrap_or_default()
        },
        inputs.egress,
        ids,
        inputs.hop_of,
    )?;
    inputs.dress(&mut tables);
    program.apply(Some(old), &tables)?;
    Ok(tables)
}

/// The control loop's handle on the plane, shared with status and metrics,
/// which read its counters.
impl Plane for Arc<Mutex<XdpPlane>> {
    fn name(&self) -> &'static str {
        "XDP"
    }

    fn guards(&self) -> bool {
        true
    }

    fn reload(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        Ok(locked(self)?.reload(config, status)?)
    }

    fn update(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        Ok(locked(self)?.update(config, status)?)
    }

    fn take_back(&mut self, config: &Config, status: &[Vec<Status>]) -> Result<(), WriteError> {
        Ok(locked(self)?.take_back(config, status)?)
    }
}

/// The plane, unless a panic while it was being written poisoned the lock:
/// its maps may be half written, and only a restart rebuilds them.
fn locked(plane: &Mutex<XdpPlane>) -> Result<std::sync::MutexGuard<'_, XdpPlane>, WriteError> {
    plane
        .lock()
        .map_err(|_| "an earlier failure left the XDP plane locked; restart the daemon".into())
}
