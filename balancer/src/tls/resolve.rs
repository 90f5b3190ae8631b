//! The certificate for a handshake, by the name the client asked for
//! (SNI): an exact name first, then a wildcard one label deep
//! (`*.example.test` serves `a.example.test`, not `example.test` nor
//! `a.b.example.test`, as RFC 6125 has it), else the listener's first
//! certificate, unless `strict_sni` refuses the handshake. Each name goes
//! to the first certificate that lists it. Built once per certificate set,
//! read without a lock by every handshake.

use std::{collections::HashMap, fmt, sync::Arc};

use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::certs::Loaded;

/// Certificates by name.
pub struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For no name or an unknown one; `None` when strict.
    default: Option<Arc<CertifiedKey>>,
}

impl Table {
    /// The table of `certs` (the first the default unless `strict`).
    #[must_use]
    pub fn new(certs: &[Loaded], strict: bool) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for name in &c.names {
                let name = name.trim_end_matches('.');
                let list = match name.strip_prefix("*.") {
                    Some(rest) => (&mut wildcard, rest),
                    None => (&mut exact, name),
                };
                list.0
                    .entry(list.1.to_owned())
                    .or_insert_with(|| c.key.clone());
            }
        }
        Self {
            exact,
            wildcard,
            default: (!strict)
                .then(|| certs.first().map(|c| c.key.clone()))
                .flatten(),
        }
    }

    /// The certificate for `sni`, if any serves it.
    #[must_use]
    pub fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = sni else {
            return self.default.clone();
        };
        let name = sni.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        self.default.clone()
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl ResolvesServerCert for Table {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(hello.server_name())
    }
}

#[cfg(test)]
mod tests;
