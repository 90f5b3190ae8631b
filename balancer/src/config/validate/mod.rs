//! Turns the raw file into a [`Config`], checking every value and every
//! cross-reference. It collects all problems instead of stopping at the
//! first, so one `balancer check` run lists everything to fix.
//!
//! One file per section of the file: [`top`] (version, admin, state and
//! shutdown), [`listeners`], [`pools`] (and their backends), [`health`],
//! [`xdp`] and [`guard`]. They share the [`Problems`] collector here, and
//! take their defaults from [`super::defaults`] and their ceilings from
//! [`super::limits`].

mod announce;
mod discover;
mod guard;
mod health;
mod http;
mod listeners;
mod pool_tls;
mod pools;
mod sni;
mod tls;
mod top;
mod xdp;

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    time::Duration,
};

use super::{limits::MAX_NAME, model::Config, raw::RawConfig, values};

/// Accumulates `(field path, message)` pairs.
#[derive(Default)]
pub struct Problems(pub Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// A list of `len` `what` longer than `max` is one problem at `path`.
    fn at_most(&mut self, path: impl Into<String>, len: usize, max: usize, what: &str) {
        if len > max {
            self.add(path, format!("{len} {what} exceed the limit of {max}"));
        }
    }

    fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.add(path, m)).ok()
    }

    fn duration(&mut self, path: &str, text: Option<&String>, default: Duration) -> Duration {
        text.map_or(Some(default), |t| self.check(path, values::duration(t)))
            .unwrap_or(default)
    }

    /// `name` must not be blank nor taken by another `what` in `names`.
    fn unique_name<'a>(
        &mut self,
        at: String,
        name: &'a str,
        names: &mut HashSet<&'a str>,
        what: &str,
    ) {
        if name.trim().is_empty() {
            self.add(at, "must not be empty");
        } else if name.len() > MAX_NAME {
            let start: String = name.chars().take(32).collect();
            self.add(
                at,
                format!(
                    "`{start}...` is {} bytes long; names may be at most {MAX_NAME}",
                    name.len()
                ),
            );
        } else if !names.insert(name) {
            self.add(
                at,
                format!("`{name}` is used by another {what} (names must be unique)"),
            );
        }
    }

    fn bounded(&mut self, path: &str, value: Option<u64>, default: u64, max: u64) -> NonZeroU32 {
        let v = value.unwrap_or(default);
        if v == 0 || v > max {
            self.add(path, format!("`{v}` is out of range (expected 1..={max})"));
        }
        NonZeroU32::new(u32::try_from(v.clamp(1, max)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN)
    }
}

/// A discovery file's backends (see [`crate::config::backends_file`]).
pub fn backends_file(
    raw: &super::raw::RawBackendsFile,
) -> Result<Vec<super::model::Backend>, Problems> {
    let mut p = Problems::default();
    let out = pools::backends(&raw.backends, "backends", true, &mut p);
    if p.0.is_empty() { Ok(out) } else { Err(p) }
}

/// Validates `raw`; on failure returns every problem found.
pub fn validate(raw: &RawConfig) -> Result<Config, Problems> {
    let mut p = Problems::default();
    top::version(raw.version, &mut p);
    let admin = top::admin(raw.admin.as_ref(), &mut p);
    let pools = pools::pools(&raw.pools, &mut p);
    let pool_index: HashMap<&str, usize> = raw
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| (pool.name.as_str(), i))
        .collect();
    let xdp = raw.xdp.as_ref().map(|x| xdp::xdp(x, &mut p));
    let announce = raw.announce.as_ref().map(|a| announce::announce(a, &mut p));
    let guard = raw
        .guard
        .as_ref()
        .map(|g| guard::guard(g, &mut p))
        .unwrap_or_default();
    let listeners = listeners::listeners(
        &raw.listeners,
        &pool_index,
        raw.xdp.is_some(),
        &guard,
        &mut p,
    );
    xdp::listeners(&listeners, &pools, &mut p);
    pool_tls::listeners(&listeners, &pools, &mut p);
    let state_dir = top::state_dir(raw.state_dir.as_deref(), &mut p);
    let shutdown_grace = top::shutdown_grace(raw.shutdown_grace.as_ref(), &mut p);
    let demo_backends = top::demo_backends(&raw.demo_backends, &mut p);
    if raw.listeners.is_empty() {
        p.add("listeners", "no listeners defined (expected at least one)");
    }
    if !p.0.is_empty() {
        return Err(p);
    }
    Ok(Config {
        admin: admin.listen.expect("checked above"),
        admin_token_file: admin.token_file,
        admin_insecure: admin.insecure,
        admin_public_metrics: admin.public_metrics,
        listeners,
        pools,
        xdp,
        guard,
        announce,
        shutdown_grace,
        state_dir,
        demo_backends,
    })
}
