//! The admin HTTP API on `admin.listen`: status as JSON and operator
//! actions on backends (see [`routes`] for the table). Actions go to the
//! control loop, which owns backend states, and the answer comes back from
//! it. With `admin.token_file`, every request must carry
//! `Authorization: Bearer <token>` (but `GET /metrics` with
//! `admin.public_metrics`). Errors are JSON: `{"error": "..."}`. What gets
//! in at all is bounded ([`gate`]).

pub mod client;
pub mod dashboard;
pub mod gate;
pub mod metrics;
pub mod routes;

use std::{convert::Infallible, io, net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
};
use tracing::{debug, info, warn};

use self::routes::{Route, route};
use crate::{
    publish::{self, Sources},
    reload::ReloadRequest,
    runtime::{control::Event, guard_lists::ListChange},
};

/// What the API reads and where it sends actions.
pub struct Api {
    /// What `/status` shows.
    pub sources: Arc<Sources>,
    /// What `/metrics` shows.
    pub metrics: metrics::Metrics,
    /// The control loop.
    pub events: mpsc::Sender<Event>,
    /// The daemon's reload requests.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// The bearer token requests must carry, if any.
    pub token: Option<String>,
    /// `GET /metrics` needs no token (`admin.public_metrics`).
    pub public_metrics: bool,
    /// Requests per second over all clients.
    pub rate: gate::Rate,
}

impl Api {
    /// The API over `sources`, sending actions to the control loop and
    /// reload requests to the daemon.
    #[must_use]
    pub fn new(
        sources: Arc<Sources>,
        (events, reload): (mpsc::Sender<Event>, mpsc::Sender<ReloadRequest>),
        token: Option<String>,
        public_metrics: bool,
    ) -> Self {
        Self {
            metrics: metrics::Metrics::new(sources.clone()),
            sources,
            events,
            reload,
            token,
            public_metrics,
            rate: gate::Rate::new(gate::RATE, gate::BURST),
        }
    }
}

/// Reads the token in `path`: its first line, trimmed.
pub fn read_token(path: &std::path::Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is empty; put the token on its first line",
        ));
    }
    Ok(token)
}

/// Serves the API on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, api: Arc<Api>) {
    if let Ok(a) = listener.local_addr() {
        info!(address = %a, auth = api.token.is_some(), public_metrics = api.public_metrics, "admin API listening");
        if api.token.is_none() && !a.ip().is_loopback() {
            warn!(address = %a, "the admin API listens beyond loopback without a token (admin.insecure): anyone who reaches it can drain backends, reload and change the guard");
        }
    }
    let open = Arc::new(Semaphore::new(gate::MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "admin API accept failed");
                crate::proxy::accept::backoff(&e).await;
                continue;
            }
        };
        // Over the bound: closed at once, before a byte is read.
        let Ok(permit) = open.clone().try_acquire_owned() else {
            debug!(%peer, limit = gate::MAX_CONNECTIONS, "admin API connection refused: too many open");
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&req, &api, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(gate::HEAD_TIMEOUT)
                .max_buf_size(gate::MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

async fn handle(req: &Request<Incoming>, api: &Api, peer: SocketAddr) -> Response<Full<Bytes>> {
    if !api.rate.allow() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many admin requests: at most {} a second (bursts of {})",
                gate::RATE,
                gate::BURST
            ),
        );
    }
    // The dashboard's files hold no data: the page asks the API itself,
    // with the token.
    if req.method() == Method::GET
        && let Some(asset) = dashboard::asset(req.uri().path())
    {
        return dashboard::serve(asset, req.headers());
    }
    if let Some(refused) = unauthorized(req, api) {
        return refused;
    }
    // Every action is in the method and path; a body is refused unread.
    if req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
    {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the admin API takes no request body",
        );
    }
    match route(req.method().as_str(), req.uri().path()) {
        Ok(Route::Reload) => match ask(&api.reload, |tx| tx).await {
            Ok(Ok(text)) => {
                info!(%peer, "reload requested through the admin API: done");
                reply(StatusCode::OK, &json!({ "reloaded": text }))
            }
            Ok(Err(e)) => error(status(e.status()), &e.to_string()),
            Err(stopping) => stopping,
        },
        Ok(Route::Metrics) => match api.metrics.render() {
            Ok(text) => {
                let mut r = Response::new(Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                r
            }
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics",
            ),
        },
        Ok(Route::Status) => reply(
            StatusCode::OK,
            &serde_json::to_value(publish::snapshot(&api.sources)).unwrap_or_default(),
        ),
        Ok(Route::Guard(change)) => guard(api, change, peer).await,
        Ok(Route::Announce(command)) => announce(api, command, peer).await,
        Ok(Route::XdpLog(level)) => xdp_log(api, level, peer),
        Ok(Route::Backend {
            pool,
            backend,
            action,
        }) => {
            let asked = |reply| Event::Admin {
                pool: pool.clone(),
                backend,
                action,
                reply,
            };
            match ask(&api.events, asked).await {
                Ok(Ok(state)) => {
                    info!(%peer, %pool, %backend, ?action, %state, "admin API request done");
                    reply(
                        StatusCode::OK,
                        &json!({ "pool": pool, "backend": backend.to_string(), "state": state.name() }),
                    )
                }
                Ok(Err(e)) => error(status(e.status()), &e.to_string()),
                Err(stopping) => stopping,
            }
        }
        Err(e) => error(status(e.status()), &e.to_string()),
    }
}

/// The refusal of a request without the right bearer token, when the API
/// has one (`/metrics` goes without it with `admin.public_metrics`).
fn unauthorized(req: &Request<Incoming>, api: &Api) -> Option<Response<Full<Bytes>>> {
    let public =
        api.public_metrics && req.method() == Method::GET && req.uri().path() == "/metrics";
    let token = api.token.as_ref().filter(|_| !public)?;
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>`",
        )),
        Some(t) if !gate::same_token(t.as_bytes(), token.as_bytes()) => {
            Some(error(StatusCode::UNAUTHORIZED, "wrong bearer token"))
        }
        Some(_) => None,
    }
}

/// Shows or changes the guard lists through the control loop.
async fn guard(api: &Api, change: ListChange, peer: SocketAddr) -> Response<Full<Bytes>> {
    let show = change == ListChange::Show;
    let asked = |reply| Event::Guard {
        change: change.clone(),
        reply,
    };
    match ask(&api.events, asked).await {
        Ok(Ok(answer)) => {
            if !show {
                info!(%peer, ?change, changed = answer.changed, "admin API guard list request done");
            }
            reply(
                StatusCode::OK,
                &serde_json::to_value(&answer).unwrap_or_default(),
            )
        }
        Ok(Err(e)) => error(status(e.status()), &e.to_string()),
        Err(stopping) => stopping,
    }
}

/// Shows the announcements, or withdraws or restores the host.
async fn announce(
    api: &Api,
    command: Option<crate::announce::control::Command>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let Some(handle) = &api.sources.announce else {
        return error(
            StatusCode::CONFLICT,
            "the running config has no `announce` section, so this host announces nothing",
        );
    };
    let Some(command) = command else {
        return reply(
            StatusCode::OK,
            &serde_json::to_value(handle.report()).unwrap_or_default(),
        );
    };
    match handle.ask(command).await {
        Ok(report) => {
            info!(%peer, ?command, "admin API announce request done");
            reply(
                StatusCode::OK,
                &serde_json::to_value(report).unwrap_or_default(),
            )
        }
        Err(e) => error(status(e.status()), &e.to_string()),
    }
}

/// Shows or sets the level the XDP programs report at.
fn xdp_log(
    api: &Api,
    level: Option<crate::config::model::KernelLog>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let Some(plane) = &api.sources.xdp else {
        return error(
            StatusCode::CONFLICT,
            "the XDP plane is not running (no `xdp` section, or it could not attach), so no program reports",
        );
    };
    let Ok(mut plane) = plane.lock() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the XDP plane's lock is poisoned",
        );
    };
    if let Some(level) = level {
        if let Err(e) = plane.set_kernel_log(level) {
            let code = match e {
                crate::dataplane::xdp::PlaneError::NeedsRestart(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return error(code, &e.to_string());
        }
        info!(%peer, %level, "admin API XDP diagnostics request done");
    }
    reply(StatusCode::OK, &publish::kernel_log(&plane))
}

/// Sends the message `make` builds around a reply channel to `to`, and
/// waits for the reply; a 503 when the daemon is stopping (the receiver,
/// or the reply's sender, is gone).
async fn ask<M, T>(
    to: &mpsc::Sender<M>,
    make: impl FnOnce(oneshot::Sender<T>) -> M,
) -> Result<T, Response<Full<Bytes>>> {
    let stopping = || error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    let (tx, rx) = oneshot::channel();
    to.send(make(tx)).await.map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())
}

/// An error's status code as hyper takes it.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(code, &json!({ "error": message }))
}

fn reply(code: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec_pretty(body).unwrap_or_default();
    text.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
