//! SQL queries as subsegments: an axum service whose handler queries SQLite through a traced
//! sqlx pool.
//!
//! `cargo run -p examples --example minimal_sqlx` serves one request to itself and prints the
//! trace an in-process collector received: the request's segment with one `remote`
//! subsegment per query, each with its `sql` block (literals in the statement replaced by `?`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::{routing::get, Router};
use sqlx::Sqlite;
use xray_local::{render_trace, Collector, RenderOptions};
use xray_sql::sqlx::XRayPool;
use xray_tower::XRayLayer;

async fn orders(State(pool): State<XRayPool<Sqlite>>) -> String {
    // `&pool` is an executor like `&Pool`: every statement becomes a subsegment of the
    // request's segment.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'paid'")
        .fetch_one(&pool)
        .await
        .unwrap_or(-1);
    let mut tx = pool.begin().await.expect("a transaction");
    sqlx::query("UPDATE orders SET status = ?1 WHERE id = ?2")
        .bind("shipped")
        .bind(1_i64)
        .execute(&mut tx)
        .await
        .expect("an update");
    tx.commit().await.expect("a commit");
    format!("{count} paid orders")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the X-Ray daemon (see minimal_axum).
    let collector = Collector::start()?;
    let layer = XRayLayer::new("minimal-sqlx").with_recorder(collector.recorder("minimal-sqlx"));

    // The one line: wrap the pool where it is built.
    let pool = XRayPool::new(
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await?,
    );
    // Outside a segment, queries run untraced (and cost nothing extra).
    sqlx::raw_sql(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT);
         INSERT INTO orders (status) VALUES ('paid'), ('paid'), ('open');",
    )
    .execute(&pool)
    .await?;
    // The server's version, fetched once per pool; waiting for it here makes the first
    // request's subsegments carry it.
    pool.database_version().await;

    let app = Router::new()
        .route("/orders", get(orders))
        .with_state(pool)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, make_service).await });

    let body = reqwest::get(format!("http://{addr}/orders"))
        .await?
        .text()
        .await?;
    println!("GET /orders → {body}\n");
    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    for doc in trace.entities().iter().map(|e| e.document()) {
        if let Some(sql) = &doc.sql {
            println!("{}: {}", doc.name, serde_json::to_string(sql)?);
        }
    }
    Ok(())
}
