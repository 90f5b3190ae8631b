//! The web dashboard at `/` on the admin listener: one HTML page, its
//! script and its style sheet, embedded in the binary. The files hold no
//! data and are served without the token; the script reads `/status` each
//! second and calls the backend actions with the bearer token the operator
//! gives it, so the API's own check guards everything the page shows or
//! does. A strict Content-Security-Policy allows nothing but these files
//! and the API on the same origin; an `ETag` (the files' hash) lets
//! browsers revalidate instead of fetching again.

use std::hash::{Hash as _, Hasher as _};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    HeaderMap, Response, StatusCode,
    header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH},
};

/// One embedded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("index.html"),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_str!("app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const ICON: Asset = Asset {
    body: include_str!("icon.svg"),
    content_type: "image/svg+xml",
};
const STYLE: Asset = Asset {
    body: include_str!("style.css"),
    content_type: "text/css; charset=utf-8",
};

/// Nothing but the page's own files and the API on the same origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The file served at `path`, if it is one of the dashboard's.
#[must_use]
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" | "/dashboard" => Some(INDEX),
        "/dashboard/app.js" => Some(SCRIPT),
        "/dashboard/style.css" => Some(STYLE),
        // Browsers ask for /favicon.ico unless told otherwise.
        "/dashboard/icon.svg" | "/favicon.ico" => Some(ICON),
        _ => None,
    }
}

/// `asset`, or 304 when the request's `If-None-Match` names it.
#[must_use]
pub fn serve(asset: Asset, request: &HeaderMap) -> Response<Full<Bytes>> {
    let tag = etag(asset);
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Full::new(Bytes::from_static(asset.body.as_bytes())))
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Always revalidated: a new binary serves new files at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(ETAG, v);
    }
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// A strong tag from the file's bytes and the binary's version.
fn etag(asset: Asset) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    asset.body.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

#[cfg(test)]
mod tests {
    use hyper::{HeaderMap, StatusCode, header::IF_NONE_MATCH};

    use super::{asset, serve};

    #[test]
    fn the_page_is_served_with_its_policy_and_revalidated_by_tag() {
        let page = asset("/").expect("index");
        let first = serve(page, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let h = first.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(h["cache-control"], "no-cache");
        let mut again = HeaderMap::new();
        again.insert(IF_NONE_MATCH, h["etag"].clone());
        assert_eq!(serve(page, &again).status(), StatusCode::NOT_MODIFIED);
        assert!(asset("/dashboard/app.js").is_some());
        assert!(asset("/status").is_none());
        // The page loads nothing from elsewhere and runs no inline script.
        let html = include_str!("index.html");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>") && !html.contains("style="));
    }
}
