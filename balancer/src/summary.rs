//! The short human summary `balancer check` prints for a valid config.

use std::fmt::Write as _;

use crate::config::Config;

/// Renders listeners and pools, one line each.
#[must_use]
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "admin: {}", config.admin);
    let _ = writeln!(out, "listeners: {}", config.listeners.len());
    for l in &config.listeners {
        let pool = l
            .pool
            .map_or("(none: 404)", |p| config.pools[p].name.as_str());
        let routes = match &l.http {
            Some(h) => format!(", {} routes", h.routes.len()),
            None if !l.sni_routes.is_empty() => format!(", {} sni routes", l.sni_routes.len()),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} {}/{} mode={} -> pool {pool}{routes}",
            l.name, l.address, l.protocol, l.mode
        );
    }
    let _ = writeln!(out, "pools: {}", config.pools.len());
    for p in &config.pools {
        let backends: Vec<String> = p
            .backends
            .iter()
            .map(|b| format!("{} (w{})", b.address, b.weight))
            .collect();
        let found = p.discover.as_ref().map_or_else(String::new, |d| {
            let mut sources: Vec<String> = d
                .dns
                .iter()
                .map(|d| format!("dns {} {}", d.query.name, d.query.record))
                .collect();
            sources.extend(d.file.iter().map(|f| format!("file {}", f.display())));
            format!(" + discovered from {}", sources.join(" and "))
        });
        let _ = writeln!(
            out,
            "  {} {} [{}]{found}",
            p.name,
            p.algorithm,
            backends.join(", ")
        );
    }
    if let Some(x) = &config.xdp {
        let _ = writeln!(
            out,
            "xdp: interface {} forwarding {:?} flow table {}",
            x.interface, x.forwarding, x.flow_table_size
        );
    }
    out
}
