//! Starting the balancer program over pinned maps: what the last run left
//! is read back, backend ids are recovered from it so that flows pinned to
//! them keep their members, and the maps are moved from what they hold to
//! what the config says, as a reload would. The flow table is consulted
//! before the rings, so an established flow stays on its backend even when
//! the new config's ring would place it elsewhere; a removed backend's flows
//! are deleted and placed again by the ring.

use std::net::IpAddr;

use super::{
    PlaneError, Sizes, XdpProgram,
    cookies::Cookies,
    guard,
    pins::Pins,
    tables::{BackendIds, Egress, Hop, Tables},
};
use crate::config::{
    Config,
    model::{Guard, Listener, Pool},
};

/// A program started over pinned maps, and what it kept.
pub struct Adopted {
    /// The loaded, unattached program with its maps written.
    pub program: XdpProgram,
    /// The tables now in the maps.
    pub tables: Tables,
    /// The backend ids, for later changes.
    pub ids: BackendIds,
    /// Flows re-adopted from the last run (0 on a first start).
    pub kept_flows: usize,
    /// Whether the last run's tables were found and diffed against.
    pub resumed: bool,
    /// Whether the flows came from an older build's layout; the copy is
    /// finished ([`super::migrate::finish`]) once this program runs.
    pub migrating: bool,
    /// What could not be re-adopted, and why.
    pub replaced: Vec<String>,
}

/// What the maps are built from: the plane's listeners, the pools, and how
/// backends are reached; and for the guard, every listener and its settings.
pub struct Inputs<'a> {
    /// Every listener of the config, in order (the guard fronts them all).
    pub all: &'a [Listener],
    /// Indexes into `all` of the listeners the XDP plane serves.
    pub served: &'a [usize],
    /// The guard's settings, runtime list changes included.
    pub guard: &'a Guard,
    /// All pools of the config.
    pub pools: &'a [Pool],
    /// Egress facts.
    pub egress: &'a Egress,
    /// How to reach a backend.
    pub hop_of: &'a dyn Fn(IpAddr) -> Option<Hop>,
    /// SYN cookie settings, when this host allows them.
    pub cookies: Option<Cookies>,
}

impl<'a> Inputs<'a> {
    /// The inputs for every listener of `config`, `served` of them by the
    /// XDP plane.
    #[must_use]
    pub fn of(
        config: &'a Config,
        served: &'a [usize],
        egress: &'a Egress,
        hop_of: &'a dyn Fn(IpAddr) -> Option<Hop>,
        cookies: Option<Cookies>,
    ) -> Self {
        Self {
            all: &config.listeners,
            served,
            guard: &config.guard,
            pools: &config.pools,
            egress,
            hop_of,
            cookies,
        }
    }

    /// Adds the guard to `tables`, built for [`Self::listeners`].
    pub fn dress(&self, tables: &mut Tables) {
        guard::dress(tables, self.all, self.served, self.guard, self.cookies);
    }

    /// The listeners the XDP plane serves, in config order.
    #[must_use]
    pub fn listeners(&self) -> Vec<&Listener> {
        self.served.iter().map(|&i| &self.all[i]).collect()
    }
}

/// Loads the balancer over `pins`, with a flow table of `flows` entries,
/// and writes `inputs` into its maps.
pub fn start(pins: &Pins, inputs: &Inputs<'_>, flows: u32) -> Result<Adopted, PlaneError> {
    let left = pins.leftover()?;
    let listeners = inputs.listeners();
    let mut ids = match &left.tables {
        Some((old, _)) => BackendIds::recover(old, &listeners, inputs.pools),
        None => BackendIds::default(),
    };
    let mut tables = Tables::build(
        &listeners,
        inputs.pools,
        inputs.egress,
        &mut ids,
        inputs.hop_of,
    )?;
    inputs.dress(&mut tables);
    let want =
        Sizes::for_tables(&tables, flows).with_sources(inputs.guard.per_source.table_size.get());
    let plan = pins.plan(left, &tables, want)?;
    let mut program = XdpProgram::load_pinned(plan.sizes, pins)?;
    if plan.migrate_flows {
        super::migrate::copy_flows_v1(pins, &mut program, false)?;
    }
    let kept_flows = if plan.keep_flows || plan.migrate_flows {
        let live = ids.assigned();
        program.purge_flows(|_, v| !live.contains(&v.backend))?
    } else {
        0
    };
    program.apply(plan.old.as_ref(), &tables)?;
    Ok(Adopted {
        program,
        tables,
        ids,
        kept_flows,
        resumed: plan.old.is_some(),
        migrating: plan.migrate_flows,
        replaced: plan.replaced,
    })
}
