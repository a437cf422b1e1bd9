//! HTTP triggers on `http://127.0.0.1:{port}/{routePrefix}/{route}`.
//!
//! Without forwarding, the request becomes `Data.{trigger} = {Url, Method, Query, Headers,
//! Params, Identities, Body}` with the metadata the host adds (query and route values,
//! hoisted JSON body properties, `sys`), and the `res` output becomes the response:
//! `statusCode`, string `headers`, a string `body` verbatim or an object body as indented
//! JSON; no `res` gives 200 `{}`. A failed invocation answers 500. HTTP-in-and-out
//! functions are forwarded raw when `enableForwardingHttpRequest` is set.
//! `GET /admin/host/status` reports whether the handler is ready.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::app::FunctionDef;
use super::{Ctx, payload};

/// Matches a Functions route template (`runs`, `orders/{id}`, `{id:int}`, `{id?}`,
/// `status/{*path}`) against a path; returns the route values.
pub fn match_route(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let tsegs: Vec<&str> = template
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let psegs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut values = BTreeMap::new();
    for (i, t) in tsegs.iter().enumerate() {
        if let Some(inner) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            if let Some(name) = inner.strip_prefix('*') {
                values.insert(
                    name.split(':').next().unwrap_or(name).to_owned(),
                    psegs.get(i..).map(|r| r.join("/")).unwrap_or_default(),
                );
                return Some(values);
            }
            let optional = inner.ends_with('?');
            let inner = inner.trim_end_matches('?');
            let (name, constraint) = inner.split_once(':').unwrap_or((inner, ""));
            match psegs.get(i) {
                Some(seg) => {
                    if constraint == "int" && seg.parse::<i64>().is_err() {
                        return None;
                    }
                    values.insert(name.to_owned(), (*seg).to_owned());
                }
                None if optional => {}
                None => return None,
            }
        } else if psegs.get(i).is_none_or(|p| !p.eq_ignore_ascii_case(t)) {
            return None;
        }
    }
    (psegs.len() <= tsegs.len()).then_some(values)
}

/// The router of the local host's HTTP front end.
pub(crate) fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/admin/host/status", get(host_status))
        .route("/admin/functions/{name}", axum::routing::post(run_function))
        .fallback(handle)
        .layer(DefaultBodyLimit::max(crate::server::MAX_BODY_BYTES))
        .with_state(ctx)
}

async fn host_status(State(ctx): State<Ctx>) -> Response {
    let ready = ctx.worker.is_ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"id": ctx.host_id, "state": if ready { "Running" } else { "Initializing" }, "version": super::worker::HOST_VERSION}))).into_response()
}

/// `POST /admin/functions/{name}`: runs a timer function now (the host's admin API for
/// non-HTTP functions). Answers 202 once the run has finished.
async fn run_function(
    State(ctx): State<Ctx>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Some(def) = ctx.app.function(&name).cloned() else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "no such function", "name": name}),
        );
    };
    if !def
        .trigger()
        .is_some_and(|t| t.kind.eq_ignore_ascii_case("timerTrigger"))
    {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "only timer functions run from the admin API here", "name": name}),
        );
    }
    super::timer::run_now(&ctx, &def).await;
    StatusCode::ACCEPTED.into_response()
}

fn find<'a>(
    ctx: &'a Ctx,
    method: &Method,
    path: &str,
) -> Option<(&'a FunctionDef, BTreeMap<String, String>)> {
    let prefix = ctx.app.host.route_prefix.trim_matches('/');
    let rest = if prefix.is_empty() {
        Some(path.trim_start_matches('/'))
    } else {
        path.trim_start_matches('/').strip_prefix(prefix)
    };
    let rest = rest?.trim_start_matches('/');
    ctx.app
        .functions
        .iter()
        .filter(|f| !f.disabled)
        .find_map(|f| {
            let t = f
                .trigger()
                .filter(|t| t.kind.eq_ignore_ascii_case("httpTrigger"))?;
            let methods: Vec<String> = t
                .raw
                .get("methods")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_ascii_uppercase))
                        .collect()
                })
                .unwrap_or_default();
            if !methods.is_empty() && !methods.iter().any(|m| m == method.as_str()) {
                return None;
            }
            let route = t.prop("route").unwrap_or(&f.name);
            match_route(route, rest).map(|v| (f, v))
        })
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let Some((def, params)) = find(&ctx, &method, &path) else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "no function matches", "path": path}),
        );
    };
    let invocation_id = uuid::Uuid::new_v4().to_string();
    if ctx.app.host.forward_http && def.is_http_in_and_out() {
        let hs: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let pq = uri
            .path_and_query()
            .map_or(path.clone(), |p| p.as_str().to_owned());
        return match ctx
            .worker
            .forward(method.as_str(), &pq, &hs, body.to_vec(), &invocation_id)
            .await
        {
            Ok(raw) => {
                let mut resp = Response::new(Body::from(raw.body));
                *resp.status_mut() =
                    StatusCode::from_u16(raw.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                for (k, v) in raw.headers {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(&v),
                    ) {
                        resp.headers_mut().append(k, v);
                    }
                }
                resp
            }
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        };
    }
    let (data, metadata) = envelope(def, &method, &uri, &headers, &body, &params);
    match ctx.invoke(def, data, metadata.clone()).await {
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "").into_response(),
        Ok(r) => {
            let http_out = def
                .outputs()
                .find(|b| b.kind.eq_ignore_ascii_case("http"))
                .map(|b| b.name.clone());
            let res = match http_out.as_deref() {
                Some("$return") => Some(r.return_value.clone()),
                Some(name) => r
                    .outputs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone()),
                None => None,
            };
            if let Err(e) = ctx.apply_outputs(def, r.outputs, &metadata).await {
                tracing::warn!(function = %def.name, error = %e, "HTTP function outputs failed.");
                return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
            }
            match res {
                None | Some(Value::Null) => json_response(StatusCode::OK, json!({})),
                Some(v) => http_output(v),
            }
        }
    }
}

/// The `req` object and metadata for one request.
pub fn envelope(
    def: &FunctionDef,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    params: &BTreeMap<String, String>,
) -> (Map<String, Value>, Map<String, Value>) {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    // Repeated query keys are comma-joined (StringValues.ToString()).
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(decode_component(k))
            .or_default()
            .push(decode_component(v));
    }
    let query: Map<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.join(","))))
        .collect();
    let mut header_arrays: Map<String, Value> = Map::new();
    let mut header_strings: Map<String, Value> = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let display = canonical_header(name.as_str());
        header_strings.insert(display.clone(), Value::String(values.join(",")));
        header_arrays.insert(display, json!(values));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut req = json!({
        "Url": url,
        "Method": method.as_str(),
        "Query": query,
        "Headers": header_arrays,
        "Params": params,
        "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true,
            "Claims": [{"Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Admin"}]}],
    });
    // The host omits Body when there is none; octet-stream and multipart bodies are base64.
    if !body.is_empty() {
        let text = if content_type.starts_with("application/octet-stream")
            || content_type.starts_with("multipart/")
        {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            String::from_utf8_lossy(body).into_owned()
        };
        req["Body"] = Value::String(text);
    }
    let trigger = def.trigger().map_or("req", |t| t.name.as_str());
    let mut data = Map::new();
    data.insert(trigger.to_owned(), req);
    let mut m = Map::new();
    m.insert("Query".into(), Value::Object(query.clone()));
    m.insert("Headers".into(), Value::Object(header_strings));
    for (k, v) in &query {
        if !k.eq_ignore_ascii_case("code") {
            m.insert(k.clone(), payload::string(v.as_str().unwrap_or_default()));
        }
    }
    for (k, v) in params {
        m.insert(k.clone(), payload::string(v));
    }
    if content_type.contains("json") {
        payload::hoist(&mut m, &String::from_utf8_lossy(body));
    }
    m.insert("sys".into(), payload::sys(&def.name));
    (data, m)
}

fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn decode_component(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns an `http` output value into a response.
pub fn http_output(v: Value) -> Response {
    let v = match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    let Value::Object(o) = v else {
        tracing::warn!("HTTP output is not an object; the host fails to deserialize it.");
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    };
    let get = |k: &str| {
        o.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    // `statusCode` only: a `status` key is ignored by the host.
    let status = get("statusCode")
        .and_then(|s| {
            s.as_u64()
                .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
        })
        .and_then(|c| StatusCode::from_u16(c as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = match get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_string_pretty(other)
            .unwrap_or_default()
            .into_bytes(),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Some(Value::Object(h)) = get("headers") {
        for (k, v) in h {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
    }
    if !resp.headers().contains_key("content-type") {
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_match_like_the_host() {
        assert_eq!(match_route("runs", "runs"), Some(BTreeMap::new()));
        assert_eq!(match_route("runs", "runs/x"), None);
        let v = match_route("status/{*path}", "status/runs/abc").expect("catch-all");
        assert_eq!(v["path"], "runs/abc");
        assert_eq!(
            match_route("status/{*path}", "status").expect("empty catch-all")["path"],
            ""
        );
        assert!(match_route("orders/{id:int}", "orders/x").is_none());
        assert_eq!(
            match_route("orders/{id:int}", "orders/5").expect("int")["id"],
            "5"
        );
        assert!(match_route("orders/{id?}", "orders").is_some());
    }

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(decode_component("a%20b+c%2F"), "a b c/");
        assert_eq!(decode_component("bad%zz"), "bad%zz");
    }
}
