//! The HTTP side: routing of Kubernetes API paths, the verbs, and
//! responses in Kubernetes JSON.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http_body_util::BodyExt;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Frame, Incoming, SizeHint},
    header,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    RequestRecord, Shared,
    resources::{Gvr, ResourceDef},
    selector::Selectors,
    status::ApiError,
    store::Write,
    watch,
};

mod discovery;

use discovery::{group_list, resource_list, version};

/// A response body: a whole JSON document, or the lines of a watch.
#[derive(Debug)]
pub(crate) enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

/// A request, read whole.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) content_type: String,
    /// Whether the client asked for `PartialObjectMetadata`.
    pub(crate) metadata_only: bool,
    pub(crate) user_agent: String,
    pub(crate) body: Bytes,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The field manager of a write: `fieldManager`, else the user agent up
    /// to its first `/`, as the real server names managers (the kube client
    /// sends no user agent: its updates are managed by "").
    fn manager(&self) -> &str {
        self.param("fieldManager")
            .unwrap_or_else(|| self.user_agent.split('/').next().unwrap_or_default())
    }

    fn write<'a>(&'a self, subresource: Option<&'a str>) -> Write<'a> {
        Write {
            subresource,
            manager: self.manager(),
            dry_run: self.param("dryRun") == Some("All"),
        }
    }

    fn json_body(&self, yaml: bool) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).or_else(|e| {
            if yaml {
                serde_norway::from_slice(&self.body)
                    .map_err(|e| ApiError::bad_request(format!("the body is not YAML: {e}")))
            } else {
                Err(ApiError::bad_request(format!("the body is not JSON: {e}")))
            }
        })
    }
}

/// Serves one request: held writes wait for the others, injected delay
/// and failures come first, then the verb;
/// every request is logged with its status.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header(header::CONTENT_TYPE);
    let accept = header(header::ACCEPT);
    let user_agent = header(header::USER_AGENT);
    let authorization = Some(header(header::AUTHORIZATION)).filter(|a| !a.is_empty());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    };
    if method != Method::GET {
        shared
            .hold(&path, body.as_deref().unwrap_or_default())
            .await;
    }
    let (delay, fault) = shared.take_fault(method != Method::GET);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let call = Call {
        method: method.clone(),
        query: parse_query(&raw_query),
        content_type: content_type.clone(),
        metadata_only: accept.contains("as=PartialObjectMetadata"),
        user_agent,
        body: body.clone().unwrap_or_default(),
    };
    let response = match (fault, body) {
        (Some((code, retry_after)), _) => {
            let mut response = error_response(&ApiError::from_code(code));
            if let Some(secs) = retry_after
                && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        (None, Err(e)) => error_response(&e),
        (None, Ok(_)) => route(&shared, &path, &call)
            .await
            .unwrap_or_else(|e| error_response(&e)),
    };
    shared.log(RequestRecord {
        method: method.to_string(),
        path,
        query: raw_query,
        content_type: Some(content_type).filter(|c| !c.is_empty()),
        body: String::from_utf8_lossy(&call.body).into_owned(),
        status: response.status().as_u16(),
        authorization,
    });
    response
}

async fn route(shared: &Arc<Shared>, path: &str, call: &Call) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Ok(json_response(StatusCode::OK, &version())),
        ["api"] => Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        )),
        ["apis"] => Ok(json_response(
            StatusCode::OK,
            &shared.read(|s| group_list(s.defs())),
        )),
        ["api", "v1"] => Ok(json_response(
            StatusCode::OK,
            &shared.read(|s| resource_list(s.defs(), "", "v1")),
        )),
        ["apis", group, version] => Ok(json_response(
            StatusCode::OK,
            &shared.read(|s| resource_list(s.defs(), group, version)),
        )),
        ["api", "v1", rest @ ..] => resource(shared, "", "v1", rest, call).await,
        ["apis", group, version, rest @ ..] => resource(shared, group, version, rest, call).await,
        _ => Err(ApiError::no_route()),
    }
}

async fn resource(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let namespaced_resource = |name: &str| {
        shared.read(|s| {
            s.def(&Gvr::new(group, version, name))
                .map(|d| d.namespaced)
                .unwrap_or(false)
        })
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, ..] if namespaced_resource(resource) => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    let gvr = Gvr::new(group, version, resource);
    let def = shared.read(|s| s.def(&gvr).cloned())?;
    if def.namespaced && namespace.is_none() && (name.is_some() || call.method != Method::GET) {
        return Err(ApiError::no_route());
    }
    if subresource.is_some_and(|s| s != "status" || !def.status_subresource) {
        return Err(ApiError::no_route());
    }
    let Some(name) = name else {
        return collection(shared, &def, namespace, call).await;
    };
    let write = call.write(subresource);
    match call.method {
        Method::GET => {
            let object = shared.read(|s| s.get(&gvr, namespace, name))?;
            Ok(object_response(StatusCode::OK, object, call))
        }
        Method::PUT => {
            let body = call.json_body(false)?;
            let object = shared.write(|s| s.update(&gvr, namespace, name, body, write))?;
            Ok(object_response(StatusCode::OK, object, call))
        }
        Method::PATCH => {
            // syscensus patches by server-side apply, and the series of its
            // Events by merge patch; the other formats are refused, as a
            // server that does not know them would.
            if is_merge_patch(&call.content_type) {
                let body = call.json_body(false)?;
                let object =
                    shared.write(|s| s.merge_patch(&gvr, namespace, name, &body, write))?;
                return Ok(object_response(StatusCode::OK, object, call));
            }
            if !is_apply_patch(&call.content_type) {
                return Err(ApiError::unsupported_media_type(&call.content_type));
            }
            if call.param("fieldManager").is_none() {
                return Err(ApiError::bad_request(
                    "PATCH requests with an apply patch need a fieldManager",
                ));
            }
            let body = call.json_body(true)?;
            let force = call.param("force") == Some("true");
            let (object, created) =
                shared.write(|s| s.apply_patch(&gvr, namespace, name, &body, force, write))?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(object_response(status, object, call))
        }
        Method::DELETE if subresource.is_none() => {
            let options = call.json_body(false)?;
            let object = shared.write(|s| s.delete(&gvr, namespace, name, &options))?;
            let pending = shared.read(|s| s.get(&gvr, namespace, name)).is_ok();
            let status = if pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(object_response(status, object, call))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn collection(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    namespace: Option<&str>,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let gvr = def.gvr();
    let selectors = Selectors::parse(
        def,
        call.param("labelSelector"),
        call.param("fieldSelector"),
    )?;
    match call.method {
        Method::GET if matches!(call.param("watch"), Some("true" | "1")) => {
            Ok(watch::start(shared, def, namespace, selectors, call))
        }
        Method::GET => list(shared, def, namespace, &selectors, call),
        Method::POST => {
            let body = call.json_body(false)?;
            let object = shared.write(|s| s.create(&gvr, namespace, body, call.write(None)))?;
            Ok(object_response(StatusCode::CREATED, object, call))
        }
        Method::DELETE => {
            let options = call.json_body(false)?;
            let deleted = shared.write(|s| {
                let doomed = s.list(&gvr, namespace, &selectors)?;
                doomed
                    .iter()
                    .map(|o| {
                        let ns = o["metadata"]["namespace"].as_str();
                        let name = o["metadata"]["name"].as_str().unwrap_or_default();
                        s.delete(&gvr, ns, name, &options)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?;
            let rv = shared.read(|s| s.resource_version());
            Ok(json_response(
                StatusCode::OK,
                &list_body(def, deleted, rv, None, call),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// LIST, with `limit` and `continue`: pages are cut from the current
/// objects after the last one sent; every page carries the first page's
/// resourceVersion, so a watch from it misses nothing.
fn list(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    namespace: Option<&str>,
    selectors: &Selectors,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let (mut items, mut rv) = shared.read(|s| {
        Ok::<_, ApiError>((
            s.list(&def.gvr(), namespace, selectors)?,
            s.resource_version(),
        ))
    })?;
    if let Some(token) = call.param("continue") {
        let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
        let mut parts = token.splitn(3, '/');
        let token_rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
        let after = (
            parts.next().ok_or_else(bad)?.to_owned(),
            parts.next().ok_or_else(bad)?.to_owned(),
        );
        rv = token_rv;
        items.retain(|o| object_key(o) > after);
    }
    let mut next = None;
    if let Some(limit) = call
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let (ns, name) = object_key(&items[limit - 1]);
        next = Some((format!("{rv}/{ns}/{name}"), remaining));
    }
    Ok(json_response(
        StatusCode::OK,
        &list_body(def, items, rv, next, call),
    ))
}

fn object_key(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}

fn list_body(
    def: &ResourceDef,
    items: Vec<Value>,
    rv: u64,
    next: Option<(String, usize)>,
    call: &Call,
) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(remaining);
    }
    if call.metadata_only {
        let items: Vec<Value> = items.into_iter().map(metadata_only).collect();
        return json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items});
    }
    json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": metadata, "items": items})
}

/// An object as `PartialObjectMetadata`.
pub(crate) fn metadata_only(object: Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

fn object_response(status: StatusCode, object: Value, call: &Call) -> Response<Body> {
    let object = if call.metadata_only {
        metadata_only(object)
    } else {
        object
    };
    json_response(status, &object)
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Full(Some(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn error_response(error: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error.to_status())
}

/// The parameters of a query string, percent-decoded.
pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a PATCH's content type is a JSON merge patch.
fn is_merge_patch(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim() == "application/merge-patch+json"
}

/// Whether a PATCH's content type is a server-side apply patch.
fn is_apply_patch(content_type: &str) -> bool {
    matches!(
        content_type.split(';').next().unwrap_or_default().trim(),
        "application/apply-patch+yaml" | "application/apply-patch+json"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=true&x");
        assert_eq!(q["labelSelector"], "app=web,tier in (a,b)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
    }
}
