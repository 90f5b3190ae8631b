//! Debian's nginx as a test backend: one master + one worker per backend
//! namespace, answering `/` with the backend's name and serving the scratch
//! directory under `/files/`.

use std::{fmt::Write as _, net::SocketAddr, path::Path, time::Duration};

use crate::{
    certs::Pair,
    netns::Netns,
    process::Process,
    topology::{Topology, backend_addr},
};

/// Starts nginx in `ns`, listening on `listen`, answering `name\n` on `/`.
#[must_use]
pub fn start(ns: &Netns, dir: &Path, name: &str, listen: &[SocketAddr]) -> Process {
    start_with(ns, dir, name, listen, Flavor::Plain)
}

/// Starts nginx in `ns` expecting a PROXY protocol header on every
/// connection to `listen`, answering `name CLIENT-FROM-HEADER\n` on `/`.
#[must_use]
pub fn start_proxy_protocol(ns: &Netns, dir: &Path, name: &str, listen: &[SocketAddr]) -> Process {
    start_with(ns, dir, name, listen, Flavor::ProxyProtocol)
}

/// What a test nginx speaks.
#[derive(Clone, Copy)]
enum Flavor<'a> {
    Plain,
    H2c,
    ProxyProtocol,
    Tls(&'a Pair, &'a Path),
}

/// Starts nginx in `ns` speaking HTTPS (HTTP/1.1, and HTTP/2 by ALPN) on
/// `listen` with `pair`, asking for an optional client certificate
/// verified against `client_ca`; answers `name PROTOCOL sni=NAME
/// client=VERIFY\n` on `/` (`VERIFY`: `SUCCESS`, `NONE` or `FAILED:...`),
/// so a test sees what reached it.
#[must_use]
pub fn start_tls(
    ns: &Netns,
    dir: &Path,
    name: &str,
    listen: &[SocketAddr],
    (pair, client_ca): (&Pair, &Path),
) -> Process {
    start_with(ns, dir, name, listen, Flavor::Tls(pair, client_ca))
}

/// Starts nginx in `ns` speaking HTTP/2 without TLS (prior knowledge only)
/// on `listen`, answering `name PROTOCOL\n` on `/`, so a test sees which
/// protocol reached it.
#[must_use]
pub fn start_h2c(ns: &Netns, dir: &Path, name: &str, listen: &[SocketAddr]) -> Process {
    start_with(ns, dir, name, listen, Flavor::H2c)
}

fn start_with(
    ns: &Netns,
    dir: &Path,
    name: &str,
    listen: &[SocketAddr],
    flavor: Flavor<'_>,
) -> Process {
    let conf = dir.join(format!("nginx-{name}.conf"));
    let temp = dir.join(format!("nginx-{name}-tmp"));
    std::fs::create_dir_all(&temp).expect("nginx temp dir");
    let listens = listen.iter().fold(String::new(), |mut out, a| {
        let option = match flavor {
            Flavor::Plain => "",
            Flavor::H2c => " http2",
            Flavor::ProxyProtocol => " proxy_protocol",
            Flavor::Tls(..) => " ssl http2",
        };
        let _ = writeln!(out, "    listen {a}{option} reuseport;");
        out
    });
    let answer = match flavor {
        Flavor::Plain => name.to_owned(),
        Flavor::H2c => format!("{name} $server_protocol"),
        Flavor::ProxyProtocol => format!("{name} $proxy_protocol_addr"),
        Flavor::Tls(..) => {
            format!("{name} $server_protocol sni=$ssl_server_name client=$ssl_client_verify")
        }
    };
    let tls = match flavor {
        Flavor::Tls(pair, client_ca) => format!(
            "    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_client_certificate {};\n    ssl_verify_client optional;\n",
            pair.cert.display(),
            pair.key.display(),
            client_ca.display()
        ),
        _ => String::new(),
    };
    let d = dir.display();
    let t = temp.display();
    std::fs::write(
        &conf,
        format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {t}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 75s;\n  keepalive_requests 100000;\n\
               client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fcgi;\n\
               uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  sendfile on;\n\
               server {{\n{listens}{tls}    location / {{ default_type text/plain; return 200 \"{answer}\\n\"; }}\n\
                 location /files/ {{ alias {d}/; }}\n  }}\n}}\n"
        ),
    )
    .expect("write nginx.conf");
    let mut cmd = ns.command("nginx");
    cmd.args(["-c", conf.to_str().expect("utf-8"), "-e", "stderr"]);
    let p = Process::spawn(
        &format!("nginx {name}"),
        cmd,
        dir.join(format!("nginx-{name}.log")),
    );
    wait_listening(ns, listen, Duration::from_secs(10));
    p
}

/// Starts nginx named `backend-N` in every backend of `t`, listening on
/// `port` on each backend's IPv4 address, and on its IPv6 address too when
/// `v6` is set.
#[must_use]
pub fn start_all(t: &Topology, port: u16, v6: bool) -> Vec<Process> {
    (0..t.backends.len())
        .map(|i| {
            let mut listen = vec![backend_addr(i, port, false)];
            if v6 {
                listen.push(backend_addr(i, port, true));
            }
            start(
                &t.backends[i],
                t.dir.path(),
                &format!("backend-{}", i + 1),
                &listen,
            )
        })
        .collect()
}

/// Waits until every address accepts a TCP connection inside `ns`.
pub fn wait_listening(ns: &Netns, addrs: &[SocketAddr], timeout: Duration) {
    ns.enter(|| {
        let start = std::time::Instant::now();
        for a in addrs {
            while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
                assert!(
                    start.elapsed() < timeout,
                    "nothing listens on {a} after {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
}
