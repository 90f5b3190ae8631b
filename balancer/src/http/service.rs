//! One request, step by step (pingora's phases in order): checks of its
//! framing the parser leaves to us, the route, the rate limit, the target
//! (a fixed answer, a redirect, or a pool), the rewritten request sent
//! through [`super::upstream`], and the answer rewritten on its way back.
//! The request counts as in flight on its connection, and on its backend,
//! until the answer's body has been sent.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use http::{
    HeaderValue, Method, Request, Response, StatusCode, Version,
    header::{self, HOST},
};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::{
    HttpService, LiveHttp,
    answer::{self, Answer},
    body::{Body, Breach, BreachFlag, Guarded, Holding},
    clock::Activity,
    compress,
    exchange::Exchange,
    forward,
    route::{self, host_of},
    upgrade,
    upstream::{Outgoing, Send},
};
use crate::{
    config::http::{RedirectTo, Route, Target},
    runtime::{attempt::Asker, flow_tuple},
};

const IPPROTO_TCP: u8 = 6;

/// The client side of a connection, for each of its requests.
pub struct Client {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it reached.
    pub local: SocketAddr,
    /// The connection's request clock.
    pub activity: Arc<Activity>,
    /// The listener's service, swapped at reloads.
    pub live: Arc<LiveHttp>,
    /// The TLS handshake, on a listener that terminates TLS.
    pub tls: Option<crate::tls::Handshake>,
}

/// Answers `req` from `client`.
pub async fn handle(req: Request<Incoming>, client: &Client) -> Response<Body> {
    let in_flight = client.activity.begin();
    let svc = client.live.load_full();
    // The host is read once: for the route, the redirect, forwarding and
    // the log line.
    let host = host_of(req.uri(), req.headers());
    let mut x = Exchange::new(
        &req,
        host.as_deref(),
        client.peer,
        &svc.listener.name,
        svc.default_stats.clone(),
        svc.access_log.as_ref(),
        in_flight,
    );
    let response = match serve(req, host, client, &svc, &mut x).await {
        Ok(r) => r,
        Err(a) => a.response(),
    };
    x.status = response.status().as_u16();
    let sent = x.bytes_out.clone();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Holding::counting(body, x, sent).boxed())
}

async fn serve(
    req: Request<Incoming>,
    host: Option<String>,
    client: &Client,
    svc: &HttpService,
    x: &mut Exchange,
) -> Result<Response<Body>, Answer> {
    check_framing(&req)?;
    let limits = &svc.http.limits;
    if let (Some(max), Some(len)) = (limits.max_body, req.body().size_hint().exact())
        && len > max
    {
        return Err(Answer::TooLarge);
    }
    let found = svc.table.find(&route::Request {
        method: req.method(),
        host: host.as_deref(),
        path: req.uri().path(),
        headers: req.headers(),
    });
    let route = found.map(|i| &svc.table.routes()[i]);
    if let Some(i) = found {
        x.route = svc.route_stats[i].clone();
        if let Some(limiter) = &svc.limiters[i] {
            limiter
                .check(client.peer.ip(), req.headers())
                .map_err(Answer::RateLimited)?;
        }
    }
    let pool = match route.map(|r| &r.target) {
        Some(Target::Answer { status, body }) => return Ok(answer::text(*status, body.clone())),
        Some(Target::Redirect(r)) => return Ok(redirect(r, host.as_deref(), &req)),
        Some(Target::Pool(p)) => *p,
        Some(Target::Split(weights)) => split(weights, &svc.splits),
        None => svc.listener.pool.ok_or(Answer::NoRoute)?,
    };
    let encoding = route
        .filter(|r| r.compress)
        .and_then(|_| compress::choose(req.headers()));
    let method = req.method().clone();
    let mut response = proxy(req, client, svc, (route, pool), host.as_deref(), x).await?;
    let switched = (response.status() == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| response.headers().get(header::UPGRADE).cloned())
        .flatten();
    let headers = response.headers_mut();
    forward::strip_hop_by_hop(headers, false);
    if let Some(protocol) = switched {
        upgrade::restore(headers, protocol);
    }
    if let Some(r) = route {
        forward::rewrite(headers, &r.response_headers);
    }
    forward::rewrite(headers, &svc.http.response_headers);
    Ok(match encoding {
        Some(enc) if compress::worth_it(&method, &response) => compress::compress(response, enc),
        _ => response,
    })
}

/// What the parser leaves to us: an HTTP/1.1 request carries exactly one
/// `Host` (RFC 9112, 3.2), and CONNECT, which asks for a tunnel to any
/// address, is not proxied.
fn check_framing(req: &Request<Incoming>) -> Result<(), Answer> {
    if req.version() == Version::HTTP_11 && req.headers().get_all(HOST).iter().count() != 1 {
        return Err(Answer::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if req.method() == Method::CONNECT {
        return Err(Answer::BadRequest("CONNECT tunnels are not proxied"));
    }
    Ok(())
}

/// Sends `req` to a backend of pool `pool` and returns its answer, with
/// the request held in flight on the backend until the body is sent.
async fn proxy(
    mut req: Request<Incoming>,
    client: &Client,
    svc: &HttpService,
    (route, pool): (Option<&Route>, usize),
    host: Option<&str>,
    x: &mut Exchange,
) -> Result<Response<Body>, Answer> {
    let settings = &svc.upstream_settings[pool];
    let h2 = settings.version.is_h2();
    // An HTTP/2 backend cannot take an HTTP/1.1 upgrade: it goes as a
    // plain request, and the client sees the backend's answer.
    let upgrade = upgrade::requested(&req).filter(|_| !h2);
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, incoming) = req.into_parts();
    let idempotent = is_idempotent(&parts.method);
    rewrite_request(&mut parts, client, svc, route, host, (h2, upgrade))?;
    let breach = BreachFlag::default();
    let body = (!incoming.is_end_stream()).then(|| {
        Guarded::new(
            incoming,
            svc.http.limits.body_timeout,
            svc.http.limits.max_body,
            x.bytes_in.clone(),
            breach.clone(),
        )
        .boxed()
    });
    let live = svc.pools[pool].load_full();
    let asker = Asker {
        listener: &svc.listener.name,
        attempts: svc.listener.connect_attempts.get() as usize,
        passive: &svc.passive[pool],
    };
    let proxy_header = live.proxy_protocol.map(|version| {
        let tls = client.tls.as_ref();
        crate::proxy_protocol::send::header(
            version,
            crate::proxy_protocol::Addresses {
                source: client.peer,
                destination: client.local,
            },
            tls.and_then(|t| t.alpn.as_deref()),
            tls.and_then(|t| t.sni.as_deref()),
        )
    });
    let send = Send {
        proxy_header: proxy_header.as_deref(),
        pool: &live,
        settings,
        flow: &flow_tuple(client.peer, client.local, IPPROTO_TCP),
        asker: &asker,
        connect_timeout: svc.listener.connect_timeout,
        response_timeout: svc.http.limits.response_timeout,
        idempotent,
        tls: svc.upstream_tls.get(pool).and_then(Option::as_deref),
    };
    match svc.upstreams.send(&send, Outgoing { parts, body }).await {
        Ok(mut answered) => {
            if let Some(client_side) = client_upgrade
                && answered.response.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                let backend_side = hyper::upgrade::on(&mut answered.response);
                let held = upgrade::Held {
                    active: answered.stats.open(),
                    tracked: svc.tracker.open(),
                    stats: answered.stats.clone(),
                };
                upgrade::tunnel(client_side, backend_side, svc.listener.idle_timeout, held);
            }
            x.backend = Some(answered.address);
            x.retries = answered.retries;
            x.active = Some(answered.stats.open());
            Ok(answered.response)
        }
        Err(why) => Err(match breach.get() {
            Breach::TooLarge => Answer::TooLarge,
            Breach::Idle => Answer::RequestTimeout,
            Breach::None => {
                svc.stats.no_backend.fetch_add(1, Ordering::Relaxed);
                Answer::unreachable(&why)
            }
        }),
    }
}

/// Rewrites the request `parts` for a backend of pool speaking HTTP/2
/// when `h2`: hop-by-hop headers out (the upgrade's back in when one is
/// asked for), `X-Forwarded-*`, the listener's and route's rewrites, the
/// route's prefix stripped, `Host` and the URI as the backend's protocol
/// wants them.
fn rewrite_request(
    parts: &mut http::request::Parts,
    client: &Client,
    svc: &HttpService,
    route: Option<&Route>,
    host: Option<&str>,
    (h2, upgrade): (bool, Option<HeaderValue>),
) -> Result<(), Answer> {
    let h = &mut parts.headers;
    forward::strip_hop_by_hop(h, h2);
    if let Some(protocol) = upgrade {
        upgrade::restore(h, protocol);
    }
    let proto = if client.tls.is_some() {
        "https"
    } else {
        "http"
    };
    forward::add_forwarded(h, client.peer.ip(), proto, host);
    if let Some(auth) = svc.http.tls.as_ref().and_then(|t| t.client_auth.as_ref()) {
        // Only the verified subject travels under this name: a client
        // cannot claim one by sending the header itself.
        h.remove(&auth.subject_header);
        let subject = client.tls.as_ref().and_then(|t| t.subject.as_deref());
        if let Some(v) = subject.and_then(|s| HeaderValue::from_str(s).ok()) {
            h.insert(auth.subject_header.clone(), v);
        }
    }
    forward::rewrite(h, &svc.http.request_headers);
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut stripped = None;
    if let Some(r) = route {
        forward::rewrite(&mut parts.headers, &r.request_headers);
        if let Some(prefix) = &r.strip_prefix {
            stripped = Some(forward::strip_prefix(pq, prefix));
        }
    }
    if let Some(a) = parts.uri.authority() {
        // An absolute-form or HTTP/2 request names its host in the URI.
        forward::set_host(&mut parts.headers, a.as_str());
    } else if !parts.headers.contains_key(HOST) {
        // An HTTP/1.0 request may name no host; the backend hears
        // HTTP/1.1, which must, so it gets the address the client asked.
        forward::set_host(&mut parts.headers, &client.local.to_string());
    }
    let origin_form = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
    if h2 || stripped.is_some() || !origin_form {
        let authority = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
        let pq = stripped
            .as_deref()
            .unwrap_or_else(|| parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        parts.uri = forward::upstream_uri(pq, authority, h2)
            .map_err(|_| Answer::BadRequest("the request target cannot be forwarded"))?;
    }
    if h2 {
        parts.headers.remove(HOST);
    }
    parts.version = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    Ok(())
}

/// RFC 9110, 9.2.2: methods a client may repeat without a second effect.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A pool of `weights` for the next request: a well-mixed sequence, so any
/// run of requests splits close to the weights.
fn split(weights: &[(usize, u32)], counter: &std::sync::atomic::AtomicU64) -> usize {
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let mut x = mix(n) % total.max(1);
    for (pool, w) in weights {
        let w = u64::from(*w);
        if x < w {
            return *pool;
        }
        x -= w;
    }
    weights.last().map_or(0, |(p, _)| *p)
}

/// splitmix64's finaliser: consecutive inputs, unrelated outputs.
const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A route's redirect for `req` to `host`.
fn redirect(
    r: &crate::config::http::Redirect,
    host: Option<&str>,
    req: &Request<Incoming>,
) -> Response<Body> {
    let location = match &r.to {
        RedirectTo::Location(l) => l.clone(),
        RedirectTo::Scheme(scheme) => {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let text = format!("{scheme}://{}{pq}", host.unwrap_or("localhost"));
            HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("/"))
        }
    };
    let mut resp = Response::new(super::body::empty());
    *resp.status_mut() = r.status;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::split;

    #[test]
    fn splits_follow_their_weights_over_any_long_run() {
        let counter = AtomicU64::new(0);
        let weights = [(7, 95), (9, 5)];
        let canary = (0..4000).filter(|_| split(&weights, &counter) == 9).count();
        assert!(
            (120..=280).contains(&canary),
            "5% of 4000 is 200, got {canary}"
        );
        let only = [(1, 0), (2, 3)];
        assert!((0..100).all(|_| split(&only, &counter) == 2));
    }
}
