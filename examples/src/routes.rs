//! The route table, as framework-neutral async functions.
//!
//! Each route returns `Result<Reply, RouteError>`; the adapters ([`axum_app`](crate::axum_app)
//! and [`actix_app`](crate::actix_app)) run it through [`respond`](crate::reply::respond) and
//! turn the [`Reply`] into their response type. Everything X-Ray-specific that the routes do
//! goes through `xray_core` and the traced clients, and finds the request's segment as the
//! current entity.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use xray_core::FutureExt as _;

use crate::reply::Reply;

/// Largest `n` for `/work/{n}`.
pub const MAX_WORK: u32 = 1000;
/// Largest `n` for `/fanout/{n}`.
pub const MAX_FANOUT: u32 = 100;
/// How long each `/fanout` branch sleeps.
pub const FANOUT_BRANCH_TIME: Duration = Duration::from_millis(20);
/// The partition key attribute `/dynamodb/{table}/{key}` looks up.
pub const DYNAMODB_KEY_ATTRIBUTE: &str = "id";

/// Errors a route returns (answered with `500`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// `/error` fails on purpose, with a cause chain to show in the trace.
    #[error("the /error route failed on purpose")]
    OnPurpose(#[source] std::io::Error),
    /// A `/fanout` branch did not finish.
    #[error("a fanout branch did not finish")]
    Branch(#[source] tokio::task::JoinError),
}

/// What the routes share: the traced HTTP client and the (lazily built) DynamoDB client.
#[derive(Clone, Debug)]
pub struct AppState {
    http: ClientWithMiddleware,
    dynamodb: Arc<OnceCell<aws_sdk_dynamodb::Client>>,
    db: Arc<OnceCell<Result<crate::db::Database, String>>>,
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// A reqwest client with [`XRayMiddleware`](xray_reqwest::XRayMiddleware) (10 s timeout);
    /// the DynamoDB client is built on first use, see [`crate::aws::dynamodb_client`].
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let http = reqwest_middleware::ClientBuilder::new(client)
            .with(xray_reqwest::XRayMiddleware::new())
            .build();
        Self {
            http,
            dynamodb: Arc::new(OnceCell::new()),
            db: Arc::new(OnceCell::new()),
        }
    }

    async fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb.get_or_init(crate::aws::dynamodb_client).await
    }

    /// The pool for `DATABASE_URL`, made on first use (see [`crate::db::connect`]).
    async fn db(&self) -> &Result<crate::db::Database, String> {
        self.db
            .get_or_init(|| async {
                let url = std::env::var(crate::db::DATABASE_URL).ok();
                crate::db::connect(url.as_deref()).map_err(|e| e.to_string())
            })
            .await
    }
}

type RouteResult = Result<Reply, RouteError>;

/// `GET /`: `200 ok`.
pub async fn root() -> RouteResult {
    Ok(Reply::text(200, "ok"))
}

/// `GET /status/{code}`: answers with that status (`400` when it is not one).
pub async fn status(code: &str) -> RouteResult {
    Ok(
        match code.parse::<u16>().ok().filter(|c| (100..=599).contains(c)) {
            Some(c) => Reply::text(c, format!("{c}\n")),
            None => Reply::text(400, "status must be a number from 100 to 599\n"),
        },
    )
}

/// `GET /annotated`: annotation `example_key=example_value`, metadata and a user on the
/// request's segment.
pub async fn annotated() -> RouteResult {
    xray_core::put_annotation("example_key", "example_value");
    xray_core::put_metadata("example", json!({"answer": 42, "tags": ["a", "b"]}));
    xray_core::set_user("example-user");
    Ok(Reply::text(200, "annotated\n"))
}

fn parse_count(n: &str, max: u32) -> Result<u32, Reply> {
    match n.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(Reply::text(
            400,
            format!("n must be a number from 0 to {max}\n"),
        )),
    }
}

/// `GET /work/{n}`: `n` sequential subsegments `step-1` … `step-n`.
pub async fn work(n: &str) -> RouteResult {
    let n = match parse_count(n, MAX_WORK) {
        Ok(n) => n,
        Err(reply) => return Ok(reply),
    };
    for i in 1..=n {
        xray_core::capture_async(&format!("step-{i}"), tokio::task::yield_now()).await;
    }
    Ok(Reply::text(200, format!("{n} steps\n")))
}

/// `GET /fanout/{n}`: `n` spawned tasks, each a subsegment `fanout-{i}` sleeping
/// [`FANOUT_BRANCH_TIME`], all running at once and joined.
pub async fn fanout(n: &str) -> RouteResult {
    let n = match parse_count(n, MAX_FANOUT) {
        Ok(n) => n,
        Err(reply) => return Ok(reply),
    };
    let branches: Vec<_> = (1..=n)
        .map(|i| {
            // A spawned task does not inherit the current segment by itself:
            // `in_current_segment` carries it over.
            tokio::spawn(
                async move {
                    let name = format!("fanout-{i}");
                    xray_core::capture_async(&name, tokio::time::sleep(FANOUT_BRANCH_TIME)).await;
                }
                .in_current_segment(),
            )
        })
        .collect();
    for branch in branches {
        branch.await.map_err(RouteError::Branch)?;
    }
    Ok(Reply::text(200, format!("{n} branches\n")))
}

/// `GET /call?url=URL`: calls `URL` with the traced client. `200` with the downstream status
/// as the body; `502` when the call fails (connection refused, timeout, ...); `400` without a
/// usable `http`/`https` URL.
pub async fn call(state: &AppState, query: &HashMap<String, String>) -> RouteResult {
    let Some(url) = query
        .get("url")
        .and_then(|u| reqwest::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return Ok(Reply::text(400, "give ?url=http://...\n"));
    };
    Ok(match state.http.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body so the connection can be reused.
            let _ = response.bytes().await;
            Reply::text(200, status.to_string())
        }
        Err(e) => Reply::text(502, format!("call failed: {e}\n")),
    })
}

/// `GET /dynamodb/{table}/{key}`: `GetItem` with `id = key`. `200` with the item as JSON,
/// `404` when there is none, `502` when the call fails.
pub async fn dynamodb(state: &AppState, table: &str, key: &str) -> RouteResult {
    let result = state
        .dynamodb()
        .await
        .get_item()
        .table_name(table)
        .key(DYNAMODB_KEY_ATTRIBUTE, AttributeValue::S(key.to_string()))
        .send()
        .await;
    Ok(match result {
        Ok(output) => match output.item() {
            Some(item) => Reply::json(200, &item_to_json(item)),
            None => Reply::text(404, "no such item\n"),
        },
        Err(e) => Reply::text(
            502,
            format!("DynamoDB call failed: {}\n", DisplayErrorContext(e)),
        ),
    })
}

/// Largest `n` for `/db/{n}`.
pub const MAX_QUERIES: u32 = 100;

/// `GET /db/{n}`: `n` queries (1 ≤ n ≤ 100) against `DATABASE_URL`, each a subsegment. `200`
/// with the number of rows read; `502` when the database fails; `400` for another `n`.
pub async fn db(state: &AppState, n: &str) -> RouteResult {
    let n = match n.parse::<u32>() {
        Ok(n) if (1..=MAX_QUERIES).contains(&n) => n,
        _ => {
            return Ok(Reply::text(
                400,
                format!("n must be a number from 1 to {MAX_QUERIES}\n"),
            ))
        }
    };
    let db = match state.db().await {
        Ok(db) => db,
        Err(e) => return Ok(Reply::text(502, format!("database unavailable: {e}\n"))),
    };
    Ok(match db.run_queries(n).await {
        Ok(rows) => Reply::text(200, format!("{rows} rows\n")),
        Err(e) => Reply::text(502, format!("database query failed: {e}\n")),
    })
}

/// `GET /error`: returns an error.
pub async fn error() -> RouteResult {
    Err(RouteError::OnPurpose(std::io::Error::other(
        "the inventory service is out of widgets",
    )))
}

/// `GET /panic`: panics.
pub async fn panic() -> RouteResult {
    panic!("the /panic route panicked on purpose")
}

fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    item.iter()
        .map(|(k, v)| (k.clone(), attribute_to_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn attribute_to_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => l.iter().map(attribute_to_json).collect(),
        AttributeValue::M(m) => item_to_json(m),
        AttributeValue::Ss(ss) => json!(ss),
        AttributeValue::Ns(ns) => json!(ns),
        other => Value::String(format!("{other:?}")),
    }
}
