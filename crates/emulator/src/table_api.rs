//! The Table API itself (docs/servicenow/TABLE_API.md §1, §2): routing, auth, ACLs, list/read/write.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderValue, Method, StatusCode};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::auth::{check_rate, RateHeaders, User};
use crate::errors::{json_response, SnError};
use crate::identity;
use crate::query::{self, Condition, Op, Query};
use crate::render::{Display, RenderOpts, Renderer};
use crate::schema::{Kind, TableDef, Ty};
use crate::server::Shared;
use crate::writes::{self, WriteCtx};

/// `X-http-method-override` on a POST replaces the method (§1.1).
pub(crate) fn effective_method(parts: &Parts) -> Method {
    if parts.method == Method::POST {
        if let Some(m) = parts
            .headers
            .get("x-http-method-override")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Method::from_bytes(v.trim().to_ascii_uppercase().as_bytes()).ok())
        {
            return m;
        }
    }
    parts.method.clone()
}

/// A Table API path: `/api/now[/v1|/v2]/table/{table}[/{sys_id}]`.
struct Route {
    /// `/api/now/v2/table`, as the caller spelled it.
    prefix: String,
    v1: bool,
    table: String,
    sys_id: Option<String>,
}

fn parse_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/api/now/")?;
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (version, segs) = match segs.first() {
        Some(&v) if v == "v1" || v == "v2" => (Some(v), &segs[1..]),
        _ => (None, &segs[..]),
    };
    match segs {
        ["table", table] | ["table", table, _] if !table.is_empty() => Some(Route {
            prefix: match version {
                Some(v) => format!("/api/now/{v}/table"),
                None => "/api/now/table".into(),
            },
            v1: version == Some("v1"),
            table: table.to_string(),
            sys_id: segs.get(2).map(|s| s.to_string()).filter(|s| !s.is_empty()),
        }),
        _ => None,
    }
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `x-sn-apikey` header, else the query parameter of that name (AUTH_AND_INBOUND.md §1.4).
fn api_key(parts: &Parts) -> Option<String> {
    if let Some(k) = header_str(parts, API_KEY_PARAM) {
        return Some(k.trim().to_string());
    }
    url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == API_KEY_PARAM)
        .map(|(_, v)| v.into_owned())
}

const API_KEY_PARAM: &str = "x-sn-apikey";

/// Handles one Table API request; also returns who called, for the log.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    parts: &Parts,
    method: Method,
    body: &[u8],
) -> (Response, Option<(String, identity::Method)>) {
    // Outside /api a browser would get a login prompt from a 401; answer plainly instead.
    if !parts.uri.path().starts_with("/api/") {
        return ((StatusCode::NOT_FOUND, "Not Found").into_response(), None);
    }
    let identified = shared.auth().identify(
        header_str(parts, "authorization"),
        api_key(parts).as_deref(),
    );
    let (user, how) = match identified {
        Ok(found) => found,
        Err(e) => return (decorate(e.into_response(), None), None),
    };
    let rate = {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let mut c = shared.control();
        let window = c.rate.entry(user.name.clone()).or_default();
        check_rate(&user.rate_limit, window, &user.name, now)
    };
    let rate = match rate {
        Ok(h) => h,
        Err(e) => return (decorate(e.into_response(), None), Some((user.name, how))),
    };
    let resp = match route(shared, parts, &method, body, &user) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    (decorate(resp, rate.as_ref()), Some((user.name, how)))
}

/// Headers a real instance puts on every API answer (§1.4, §5).
fn decorate(mut resp: Response, rate: Option<&RateHeaders>) -> Response {
    let h = resp.headers_mut();
    let txid = format!(
        "{:012x}",
        rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
    );
    for (k, v) in [
        (
            "cache-control",
            "no-cache,no-store,must-revalidate,max-age=-1".to_string(),
        ),
        ("pragma", "no-store,no-cache".to_string()),
        ("expires", "0".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("server", "ServiceNow".to_string()),
        ("x-transaction-id", txid),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    if let Some(r) = rate {
        for (k, v) in [
            ("x-ratelimit-limit", r.limit.to_string()),
            ("x-ratelimit-reset", r.reset.to_string()),
            ("x-ratelimit-rule", r.rule.clone()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
    }
    resp
}

fn route(
    shared: &Arc<Shared>,
    parts: &Parts,
    method: &Method,
    body: &[u8],
    user: &User,
) -> Result<Response, SnError> {
    let route = parse_route(parts.uri.path()).ok_or_else(SnError::no_resource)?;
    let params = Params(
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    let def = shared
        .data()
        .def(&route.table)
        .cloned()
        .ok_or_else(|| SnError::invalid_table(&route.table))?;
    let host = header_str(parts, "host").unwrap_or("localhost").to_string();
    let opts = RenderOpts {
        display: Display::parse(params.get("sysparm_display_value")),
        exclude_links: params.flag("sysparm_exclude_reference_link"),
        fields: params.get("sysparm_fields").map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        link_base: format!("http://{host}{}", route.prefix),
    };
    let head = *method == Method::HEAD;
    let resp = match (&route.sys_id, method.as_str()) {
        (None, "GET" | "HEAD") => list(shared, parts, &def, &route, &params, &opts, user),
        (None, "POST") => create(shared, parts, &def, &route, &params, &opts, user, body),
        (None, _) => Err(SnError::method_not_allowed("GET, POST")),
        (Some(id), "GET" | "HEAD") => read(shared, &def, id, &opts, user),
        (Some(id), "PUT" | "PATCH") => update(shared, parts, &def, id, &params, &opts, user, body),
        (Some(id), "DELETE") => delete(shared, &def, id, user),
        (Some(_), _) => Err(SnError::method_not_allowed("GET, PUT, PATCH, DELETE")),
    }?;
    Ok(if head { strip_body(resp) } else { resp })
}

fn strip_body(resp: Response) -> Response {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, axum::body::Body::empty())
}

fn no_body_wanted(parts: &Parts) -> bool {
    header_str(parts, "x-no-response-body").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The filter: `sysparm_query`, or else plain `field=value` pairs (§2.1), which accept
/// choice labels as well as values.
fn build_query(def: &TableDef, params: &Params, shared: &Shared) -> Query {
    let mut q = match params.get("sysparm_query") {
        Some(s) => query::parse(s),
        None => {
            let choices = shared.data().choice_index();
            let tables = def.choice_tables();
            let mut clauses = Vec::new();
            for (k, v) in &params.0 {
                let Some(field) = def.field(k) else { continue };
                let value = match field.ty {
                    Ty::IntChoice | Ty::TextChoice => choices
                        .value_for_label(&tables, k, v)
                        .unwrap_or(v)
                        .to_string(),
                    _ => v.clone(),
                };
                clauses.push(vec![Condition {
                    field: k.clone(),
                    op: Op::Eq,
                    value,
                }]);
            }
            Query {
                blocks: vec![query::Block { clauses }],
                order: Vec::new(),
            }
        }
    };
    q.retain_known(|f| def.has_field(f));
    q.resolve_scripts(chrono::Utc::now().naive_utc());
    q
}

fn non_negative(params: &Params, key: &str) -> Option<usize> {
    params.get(key).and_then(|v| v.trim().parse::<usize>().ok())
}

fn list(
    shared: &Arc<Shared>,
    parts: &Parts,
    def: &TableDef,
    route: &Route,
    params: &Params,
    opts: &RenderOpts,
    user: &User,
) -> Result<Response, SnError> {
    if !user.can_read(def.kind) {
        return Err(SnError::query_denied());
    }
    let q = build_query(def, params, shared);
    let limit = non_negative(params, "sysparm_limit")
        .filter(|l| *l > 0)
        .unwrap_or(10_000);
    let offset = non_negative(params, "sysparm_offset").unwrap_or(0);
    let data = shared.data();
    let mut rows: Vec<_> = data.visible(def).filter(|r| q.matches(r)).collect();
    if !q.order.is_empty() {
        rows.sort_by(|a, b| q.compare(a, b));
    }
    let total = rows.len();
    let renderer = Renderer::new(&data, opts);
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| renderer.render(def, r))
        .collect();
    drop(renderer);
    drop(data);
    if route.v1 && page.is_empty() {
        return Err(SnError::no_records_v1());
    }
    let mut resp = json_response(StatusCode::OK, &json!({ "result": page }));
    if !params.flag("sysparm_no_count") {
        resp.headers_mut()
            .insert("x-total-count", HeaderValue::from(total as u64));
    }
    if !params.flag("sysparm_suppress_pagination_header") {
        let link = link_header(parts, params, total, limit, offset);
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `Link` with first/prev/next/last (§2.2); each URL repeats the caller's parameters.
fn link_header(
    parts: &Parts,
    params: &Params,
    total: usize,
    limit: usize,
    offset: usize,
) -> String {
    let host = header_str(parts, "host").unwrap_or("localhost");
    let url = |off: usize| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params.0 {
            // A key repeated into a response header would end up in whatever logs headers.
            if k != "sysparm_offset" && k != "sysparm_limit" && k != API_KEY_PARAM {
                s.append_pair(k, v);
            }
        }
        s.append_pair("sysparm_limit", &limit.to_string());
        s.append_pair("sysparm_offset", &off.to_string());
        format!("<http://{host}{}?{}>", parts.uri.path(), s.finish())
    };
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit * limit
    };
    let mut links = vec![format!("{};rel=\"first\"", url(0))];
    if offset > 0 {
        links.push(format!(
            "{};rel=\"prev\"",
            url(offset.saturating_sub(limit))
        ));
    }
    if offset + limit < total {
        links.push(format!("{};rel=\"next\"", url(offset + limit)));
    }
    links.push(format!("{};rel=\"last\"", url(last)));
    links.join(",")
}

fn read(
    shared: &Arc<Shared>,
    def: &TableDef,
    sys_id: &str,
    opts: &RenderOpts,
    user: &User,
) -> Result<Response, SnError> {
    // An ACL-hidden record is indistinguishable from a missing one (§1.6).
    if !user.can_read(def.kind) {
        return Err(SnError::no_record());
    }
    let data = shared.data();
    let rec = data.get(def, sys_id).ok_or_else(SnError::no_record)?;
    let body = json!({ "result": Renderer::new(&data, opts).render(def, rec) });
    Ok(json_response(StatusCode::OK, &body))
}

/// One record per write: an array's first element is used, the rest ignored (§1.1).
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, SnError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| SnError::bad_json())?;
    let value = match value {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    };
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(SnError::bad_json()),
    }
}

fn write_ctx<'a>(shared: &Shared, user: &'a User, params: &Params) -> WriteCtx<'a> {
    let mut ctx = WriteCtx::new(&shared.data(), &user.name);
    ctx.input_display_value = params.flag("sysparm_input_display_value");
    ctx.suppress_auto_sys = params.flag("sysparm_suppress_auto_sys_field");
    ctx.data_policy = shared.config.data_policy;
    ctx.inactive_close_code_is_empty = shared.config.inactive_close_code_is_empty;
    ctx
}

fn record_response(
    shared: &Shared,
    parts: &Parts,
    def: &TableDef,
    sys_id: &str,
    status: StatusCode,
    opts: &RenderOpts,
) -> Response {
    if no_body_wanted(parts) {
        return status.into_response();
    }
    let data = shared.data();
    let rendered = data
        .get(def, sys_id)
        .map(|r| Renderer::new(&data, opts).render(def, r))
        .unwrap_or(Value::Null);
    json_response(status, &json!({ "result": rendered }))
}

#[allow(clippy::too_many_arguments)]
fn create(
    shared: &Arc<Shared>,
    parts: &Parts,
    def: &TableDef,
    route: &Route,
    params: &Params,
    opts: &RenderOpts,
    user: &User,
    body: &[u8],
) -> Result<Response, SnError> {
    if !user.can_write(def.kind) {
        return Err(SnError::acl("Insert"));
    }
    let input = parse_body(body)?;
    let ctx = write_ctx(shared, user, params);
    let sys_id = writes::store(shared, def, None, &input, &ctx)?;
    let mut resp = record_response(shared, parts, def, &sys_id, StatusCode::CREATED, opts);
    let host = header_str(parts, "host").unwrap_or("localhost");
    let location = format!("http://{host}{}/{}/{sys_id}", route.prefix, def.name);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
fn update(
    shared: &Arc<Shared>,
    parts: &Parts,
    def: &TableDef,
    sys_id: &str,
    params: &Params,
    opts: &RenderOpts,
    user: &User,
    body: &[u8],
) -> Result<Response, SnError> {
    if !user.can_read(def.kind) {
        return Err(SnError::no_record());
    }
    if shared.data().get(def, sys_id).is_none() {
        return Err(SnError::no_record());
    }
    if !user.can_write(def.kind) {
        return Err(SnError::acl("Update"));
    }
    if def.kind == Kind::Incident && !user.may_change_closed() && is_closed(shared, def, sys_id) {
        // As instances lock Closed incidents: the write ACL fails for all but admins.
        return Err(SnError::acl("Update"));
    }
    let input = parse_body(body)?;
    let ctx = write_ctx(shared, user, params);
    writes::store(shared, def, Some(sys_id), &input, &ctx)?;
    Ok(record_response(
        shared,
        parts,
        def,
        sys_id,
        StatusCode::OK,
        opts,
    ))
}

/// State 7, Closed on a base instance.
pub(crate) const STATE_CLOSED: &str = "7";

fn is_closed(shared: &Shared, def: &TableDef, sys_id: &str) -> bool {
    shared
        .data()
        .get(def, sys_id)
        .and_then(|r| r.get("state"))
        .is_some_and(|s| s == STATE_CLOSED)
}

fn delete(
    shared: &Arc<Shared>,
    def: &TableDef,
    sys_id: &str,
    user: &User,
) -> Result<Response, SnError> {
    if !user.can_read(def.kind) || shared.data().get(def, sys_id).is_none() {
        return Err(SnError::no_record());
    }
    if !user.can_delete(def.kind) {
        return Err(SnError::acl("Delete"));
    }
    if !shared.data().delete(def, sys_id) {
        return Err(SnError::no_record());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
