//! The daemon's admin API as tests call it: curl inside the balancer's
//! namespace, on the default `127.0.0.1:9900`.

use crate::netns::Netns;

/// `(status, JSON body)` of `method path`, with `token` as a bearer token
/// when given. A body that is not JSON (such as `/metrics`) comes back as
/// `Null`.
#[must_use]
pub fn call(ns: &Netns, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let url = format!("http://127.0.0.1:9900{path}");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "10",
    ];
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    args.push(&url);
    let out = ns.run("curl", &args);
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    let code = code
        .parse()
        .unwrap_or_else(|_| panic!("no status in {out}"));
    (code, serde_json::from_str(body).unwrap_or_default())
}
