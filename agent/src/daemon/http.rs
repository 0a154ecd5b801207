//! The agent's HTTP endpoints: `/metrics` (see [`super::metrics`]), `/healthz`
//! (the agent's loop is alive), `/readyz` (the kernel program is loaded and,
//! in Kubernetes mode, the first lists arrived). They take GET only and show
//! counts, never profile content.
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Bytes,
    header::{ACCEPT, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};

use super::metrics::{Exposition, Format, Shared};

fn response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn handle(
    metrics: &Shared,
    exposition: &Exposition,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return response(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let (last_tick, ready) = metrics
        .lock()
        .map(|m| (m.last_tick, m.ready))
        .unwrap_or_default();
    match request.uri().path() {
        "/metrics" => {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let mut ok = response(StatusCode::OK, exposition.render(format));
            ok.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            ok
        }
        "/healthz" => match last_tick {
            Some(t) if t.elapsed() < Duration::from_secs(30) => {
                response(StatusCode::OK, "ok\n".into())
            }
            _ => response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent's loop is stuck\n".into(),
            ),
        },
        "/readyz" if ready => response(StatusCode::OK, "ok\n".into()),
        "/readyz" => response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        _ => response(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Serves the endpoints on `addr` until the runtime stops.
pub async fn serve(
    addr: SocketAddr,
    metrics: Shared,
    exposition: Exposition,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let exposition = Arc::new(exposition);
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    warn!(%error, "accepting an HTTP connection");
                    continue;
                }
            };
            let metrics = metrics.clone();
            let exposition = exposition.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let metrics = metrics.clone();
                    let exposition = exposition.clone();
                    async move { Ok::<_, Infallible>(handle(&metrics, &exposition, &request)) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%error, "HTTP connection");
                }
            });
        }
    });
    Ok(())
}
