//! The XDP plane of a running daemon: which listeners the kernel serves,
//! the program loaded with their tables, and where it is attached. `xdp`
//! listeners must be served here; `auto` listeners are when they qualify
//! (a `maglev` pool whose backends serve the listener's port) and the
//! program attaches, and fall back to the proxy plane otherwise.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use tracing::{info, warn};

use super::{
    Attached, XdpError, XdpProgram,
    adopt::{self, Adopted, Inputs},
    iface::{IfaceError, Interface},
    neighbor::{NeighborError, next_hop_mac},
    pins::{PinError, Pins},
    tables::{BackendIds, Egress, Tables, TablesError},
};
use crate::config::{
    Config,
    model::{Algorithm, Listener, Mode},
};

/// How long to wait for a backend's next hop to answer address resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the XDP plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The interface is missing or unreadable.
    #[error(transparent)]
    Interface(#[from] IfaceError),
    /// A backend's next hop is unknown or on another interface.
    #[error(transparent)]
    Neighbor(#[from] NeighborError),
    /// The tables could not be built.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// Loading, writing or attaching failed.
    #[error(transparent)]
    Program(#[from] XdpError),
    /// The pin directory is unusable.
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// The running XDP plane.
pub struct XdpPlane {
    program: XdpProgram,
    tables: Tables,
    ids: BackendIds,
    served: Vec<usize>,
    /// How the program is attached.
    pub attached: Attached,
    /// The interface it is attached to.
    pub interface: String,
}

/// Whether the kernel plane can serve `l` at all (ignoring attach success).
#[must_use]
pub fn qualifies(config: &Config, l: &Listener) -> bool {
    let pool = &config.pools[l.pool];
    config.xdp.is_some()
        && pool.algorithm == Algorithm::Maglev
        && pool
            .backends
            .iter()
            .all(|b| b.address.port() == l.address.port())
}

impl XdpPlane {
    /// Starts the plane for the listeners of `config` it should serve;
    /// `None` when there are none.
    pub fn start(config: &Config) -> Result<Option<Self>, PlaneError> {
        let Some(xdp) = &config.xdp else {
            return Ok(None);
        };
        let served: Vec<usize> = config
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.mode, Mode::Xdp | Mode::Auto) && qualifies(config, l))
            .map(|(i, _)| i)
            .collect();
        if served.is_empty() {
            return Ok(None);
        }
        let iface = Interface::read(&xdp.interface)?;
        let listeners: Vec<&Listener> = served.iter().map(|&i| &config.listeners[i]).collect();
        let macs = resolve(&iface.name, &listeners, config)?;
        let unspecified4 = IpAddr::from([0u8; 4]);
        let unspecified6 = IpAddr::from([0u16; 8]);
        let egress = Egress {
            forwarding: xdp.forwarding,
            mac: iface.mac,
            mtu: iface.mtu,
            ipip_src4: match iface.address_like(unspecified4) {
                Some(IpAddr::V4(a)) => a.octets(),
                _ => [0; 4],
            },
            ipip_src6: match iface.address_like(unspecified6) {
                Some(IpAddr::V6(a)) => a.octets(),
                _ => [0; 16],
            },
        };
        let pins = Pins::open(&xdp.pin_dir)?;
        let adopted = adopt::start(
            &pins,
            &Inputs {
                listeners: &listeners,
                pools: &config.pools,
                egress: &egress,
                mac_of: &|ip| macs.get(&ip).copied(),
                flows: xdp.flow_table_size.get(),
            },
        )?;
        for why in &adopted.replaced {
            warn!(pin_dir = %xdp.pin_dir.display(), "{why}");
        }
        if adopted.resumed {
            info!(pin_dir = %xdp.pin_dir.display(), flows = adopted.kept_flows, "re-adopted the pinned XDP maps: established flows keep their backends");
        }
        let Adopted {
            mut program,
            tables,
            ids,
            ..
        } = adopted;
        let attached = program.attach(&iface.name)?;
        if attached == Attached::Generic {
            warn!(interface = %iface.name, "XDP attached in GENERIC mode: the driver has no native XDP; packets are balanced correctly but without the fast path's speed");
        }
        Ok(Some(Self {
            program,
            tables,
            ids,
            served,
            attached,
            interface: iface.name,
        }))
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

    /// Current tables and the id allocator, for a later reload.
    #[must_use]
    pub fn state(&self) -> (&Tables, &BackendIds) {
        (&self.tables, &self.ids)
    }
}

/// Next-hop MACs of every backend behind `listeners`, each resolved once.
fn resolve(
    interface: &str,
    listeners: &[&Listener],
    config: &Config,
) -> Result<HashMap<IpAddr, [u8; 6]>, NeighborError> {
    let mut macs = HashMap::new();
    for l in listeners {
        for b in &config.pools[l.pool].backends {
            let ip = b.address.ip().to_canonical();
            if let std::collections::hash_map::Entry::Vacant(slot) = macs.entry(ip) {
                slot.insert(next_hop_mac(interface, ip, RESOLVE_TIMEOUT)?);
            }
        }
    }
    Ok(macs)
}
