//! The route a request is headed for, resolved once per request from the path the router
//! matches (`match_info`: percent-escapes of unreserved characters already decoded), by string
//! comparison. Auth (which scope), the rate limit (probes are exempt), the metrics (the label)
//! and the request's span all need it before the router runs; asking actix
//! (`match_pattern`) re-ran its pattern matching for each of them. The table must name the
//! same resources as `http::configure`: a test holds the two together.

/// The label of requests no route matches.
pub const UNMATCHED: &str = "unmatched";

const STATIC: [&str; 14] = [
    "/",
    "/ui/app.js",
    "/ui/style.css",
    "/metrics",
    "/api-docs/openapi.json",
    "/servers",
    "/servers/lookup",
    "/fleet",
    "/fleet/conflicts",
    "/fleet/sweep",
    "/vendors",
    "/healthz",
    "/healthz/deep",
    "/readyz",
];

const SERVER: &str = "/servers/{name}";
const SERVER_CACHE: &str = "/servers/{name}/cache";
const SWAGGER: &str = "/swagger-ui/{_:.*}";

/// The route template `path` matches (as the metrics label it), or `None`.
pub fn template(path: &str) -> Option<&'static str> {
    if let Some(t) = STATIC.iter().find(|t| **t == path) {
        return Some(t);
    }
    if let Some(rest) = path.strip_prefix("/servers/") {
        // `{name}` is one non-empty segment.
        return match rest.split_once('/') {
            None if !rest.is_empty() => Some(SERVER),
            Some((name, "cache")) if !name.is_empty() => Some(SERVER_CACHE),
            _ => None,
        };
    }
    path.starts_with("/swagger-ui/").then_some(SWAGGER)
}
