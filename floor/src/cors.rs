//! What a page on another website may fetch from us: everything public, read-only.
//!
//! Viewers embedded in a museum's own pages (OpenSeadragon, Mirador) fetch `info.json`,
//! manifests, tiles and thumbnails across origins, through the canonical address's redirects.
//! A browser drops any answer in that chain, redirects and errors included, that lacks
//! `Access-Control-Allow-Origin`, and asks first (`OPTIONS`, a preflight) before a request with
//! headers of its own, such as the `Accept: application/ld+json;profile=...` the IIIF
//! specifications recommend. Public answers are the same for everyone, so `*` is right; no
//! credentials are ever allowed, so a page elsewhere cannot act with a visitor's portal cookie.

use hyper::http::header::{self, HeaderMap, HeaderValue};
use hyper::http::{Response, StatusCode};

/// The methods a page elsewhere may use: reading only.
pub const METHODS: &str = "GET, HEAD, OPTIONS";
/// How long a browser may keep a preflight's answer (a day).
const MAX_AGE: &str = "86400";
/// The longest `Access-Control-Request-Headers` echoed back; browsers send a few names.
const MAX_REQUEST_HEADERS: usize = 512;

/// Marks a public answer as readable from any origin (unless the route already said).
pub fn allow<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert(HeaderValue::from_static("*"));
}

/// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`): 204 allowing
/// the reading methods and the headers the browser asked for (names only, echoed when they
/// are plain header names).
pub fn preflight<B: Default>(request_headers: Option<&str>) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    preflight_headers(response.headers_mut(), request_headers);
    response
}

fn preflight_headers(headers: &mut HeaderMap, request_headers: Option<&str>) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers.insert(header::ALLOW, HeaderValue::from_static(METHODS));
    let asked = request_headers.filter(|h| {
        h.len() <= MAX_REQUEST_HEADERS
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
    });
    if let Some(value) = asked.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    // The answer depends on what was asked: caches must keep one per question.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preflight_allows_reading_and_echoes_plain_header_names_only() {
        let r: Response<()> = preflight(Some("accept, if-none-match"));
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], METHODS);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "accept, if-none-match"
        );
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

        let r: Response<()> = preflight(Some("x\r\nSet-Cookie: a=b"));
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
            .is_none());
        let r: Response<()> = preflight(Some(&"a,".repeat(1000)));
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
            .is_none());
    }

    #[test]
    fn allow_keeps_what_a_route_said() {
        let mut r = Response::new(());
        allow(&mut r);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let mut r = Response::new(());
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://museum.example"),
        );
        allow(&mut r);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://museum.example"
        );
    }
}
