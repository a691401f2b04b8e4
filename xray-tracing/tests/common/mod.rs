//! Shared scaffolding: a real axum server on loopback and helpers over received documents.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use xray_core::Document;

pub const WAIT: Duration = Duration::from_secs(5);

/// Serves `app` on an ephemeral loopback port.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The child subsegment named `name`; panics with the names present when missing.
pub fn child<'a>(doc: &'a Document, name: &str) -> &'a Document {
    doc.subsegments
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no subsegment {name:?} under {:?}: {:?}",
                doc.name,
                names(doc)
            )
        })
}

/// Names of the direct subsegments.
pub fn names(doc: &Document) -> Vec<&str> {
    doc.subsegments.iter().map(|s| s.name.as_str()).collect()
}

/// Every subsegment name in the tree, depth first.
pub fn all_names(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    doc.walk(&mut |d| out.push(d.name.to_string()));
    out
}
