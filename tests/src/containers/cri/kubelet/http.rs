//! HTTP GET as the kubelet's `httpGet` probes send it.

use std::{
    io::{Read as _, Write as _},
    time::Duration,
};

/// `GET path` on `host:port` with HTTP/1.1: the status, or why none came.
pub fn http_get(host: &str, port: u16, path: &str) -> Result<u16, String> {
    http_get_body(host, port, path).map(|(status, _)| status)
}

/// `GET path` on `host:port`: status and body.
pub fn http_get_body(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream = std::net::TcpStream::connect((host, port))
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {host}:{port}: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read from {host}:{port}: {e}"))?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
