use std::collections::HashMap;

use super::merge;
use crate::{
    config::{self, Config, discover::Origin, model::Backend},
    discover::{
        Found, SourceKey,
        dns::lookup::{Answer, Target},
    },
};

fn config(extra: &str) -> Config {
    config::parse(
        &format!(
            "version: 1
listeners:
  - {{ name: l, protocol: tcp, address: \"127.0.0.1:8080\", pool: web }}
pools:
  - name: web
    backends:
      - address: 198.18.0.1:80
    discover:
{extra}
"
        ),
        "t.yaml",
    )
    .expect("valid")
}

fn dns_key(c: &Config) -> SourceKey {
    SourceKey::all(c)
        .into_iter()
        .find(|k| matches!(k, SourceKey::Dns(_)))
        .expect("a DNS source")
}

fn answer(ips: &[&str]) -> Found {
    Found::Dns(Answer {
        targets: ips
            .iter()
            .map(|ip| Target {
                ip: ip.parse().unwrap(),
                port: None,
                weight: None,
            })
            .collect(),
        ttl: std::time::Duration::from_secs(5),
        cut: 0,
    })
}

fn addresses(c: &Config) -> Vec<String> {
    c.pools[0]
        .backends
        .iter()
        .map(|b| format!("{}/{}/{}", b.address, b.weight, b.origin.label()))
        .collect()
}

#[test]
fn statics_come_first_then_discovered_in_address_order() {
    let c = config("      dns: { name: web.test, port: 80, weight: 7 }");
    let found = HashMap::from([(
        dns_key(&c),
        answer(&["198.18.0.9", "198.18.0.1", "198.18.0.3"]),
    )]);
    let (merged, left) = merge(&c, &found, &[None], None);
    assert_eq!(
        addresses(&merged),
        [
            "198.18.0.1:80/100/static",
            "198.18.0.3:80/7/dns",
            "198.18.0.9:80/7/dns"
        ]
    );
    assert_eq!(left["web"].cut, 0);
}

#[test]
fn nothing_found_yet_leaves_the_statics() {
    let c = config("      dns: { name: web.test, port: 80 }");
    let (merged, _) = merge(&c, &HashMap::new(), &[None], None);
    assert_eq!(addresses(&merged), ["198.18.0.1:80/100/static"]);
}

#[test]
fn srv_targets_bring_their_ports_and_weights() {
    let c = config("      dns: { name: _http._tcp.web.test, type: SRV }");
    let found = HashMap::from([(
        dns_key(&c),
        Found::Dns(Answer {
            targets: vec![Target {
                ip: "198.18.0.5".parse().unwrap(),
                port: Some(8080),
                weight: Some(30),
            }],
            ttl: std::time::Duration::from_secs(5),
            cut: 0,
        }),
    )]);
    let (merged, _) = merge(&c, &found, &[None], None);
    assert_eq!(
        addresses(&merged),
        ["198.18.0.1:80/100/static", "198.18.0.5:8080/30/dns"]
    );
}

#[test]
fn the_file_wins_over_dns_and_the_cap_cuts_the_rest() {
    let c = config(
        "      dns: { name: web.test, port: 80 }\n      file: /etc/balancer/web.yaml\n      max_backends: 2",
    );
    let file = SourceKey::File("/etc/balancer/web.yaml".into());
    let found = HashMap::from([
        (
            dns_key(&c),
            answer(&["198.18.0.2", "198.18.0.4", "198.18.0.5"]),
        ),
        (
            file,
            Found::File(vec![Backend {
                address: "198.18.0.2:80".parse().unwrap(),
                weight: 9,
                origin: Origin::File,
            }]),
        ),
    ]);
    let (merged, left) = merge(&c, &found, &[None], None);
    assert_eq!(
        addresses(&merged),
        [
            "198.18.0.1:80/100/static",
            "198.18.0.2:80/9/file",
            "198.18.0.4:80/100/dns"
        ]
    );
    assert_eq!(left["web"].cut, 1);
}

#[test]
fn an_xdp_pool_takes_only_its_listeners_port() {
    let c = config("      file: /etc/balancer/web.yaml");
    let found = HashMap::from([(
        SourceKey::File("/etc/balancer/web.yaml".into()),
        Found::File(
            ["198.18.0.2:80", "198.18.0.3:81"]
                .iter()
                .map(|a| Backend {
                    address: a.parse().unwrap(),
                    weight: 1,
                    origin: Origin::File,
                })
                .collect(),
        ),
    )]);
    let (merged, left) = merge(&c, &found, &[Some(80)], None);
    assert_eq!(
        addresses(&merged),
        ["198.18.0.1:80/100/static", "198.18.0.2:80/1/file"]
    );
    assert_eq!(left["web"].wrong_port, 1);
}

#[test]
fn a_source_with_no_answer_yet_keeps_what_the_pool_serves() {
    // A reload changed the DNS settings: the new query has not answered,
    // so the discovered backends served now stay until it does.
    let c = config("      dns: { name: web.test, port: 80, min_interval: 2s }");
    let serving = {
        let old = config("      dns: { name: web.test, port: 80 }");
        let found = HashMap::from([(dns_key(&old), answer(&["198.18.0.7"]))]);
        merge(&old, &found, &[None], None).0
    };
    let (merged, _) = merge(&c, &HashMap::new(), &[None], Some(&serving));
    assert_eq!(
        addresses(&merged),
        ["198.18.0.1:80/100/static", "198.18.0.7:80/100/dns"]
    );
    // Once it answers, its set replaces them.
    let found = HashMap::from([(dns_key(&c), answer(&["198.18.0.8"]))]);
    let (merged, _) = merge(&c, &found, &[None], Some(&serving));
    assert_eq!(
        addresses(&merged),
        ["198.18.0.1:80/100/static", "198.18.0.8:80/100/dns"]
    );
}
