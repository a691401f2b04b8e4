//! sqlx on SQLite, in memory and on disk: each statement sent through `XRayPool` (and its
//! transactions and connections) arrives at a real UDP collector as a `remote` subsegment
//! with the `sql` block, and every way a query ends is recorded once.

mod common;

use std::time::Duration;

use common::*;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, Sqlite, SqlitePool};
use xray_sql::sqlx::XRayPool;

async fn memory_pool() -> XRayPool<Sqlite> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    let pool = XRayPool::new(pool);
    assert!(pool.database_version().await.is_some());
    pool
}

#[tokio::test]
async fn every_kind_of_statement_is_a_subsegment() {
    let (collector, recorder) = collector();
    let pool = memory_pool().await;
    let version = pool.database_version().await.unwrap();

    let (names, doc) = traced(&recorder, &collector, async {
        sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        let inserted = sqlx::query("INSERT INTO users (name) VALUES (?1), (?2), ('carol')")
            .bind("ann")
            .bind("bob")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(inserted.rows_affected(), 3);
        let all = sqlx::query("SELECT name FROM users WHERE id > 0 ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        let one: (String,) = sqlx::query_as("SELECT name FROM users WHERE name = 'carol'")
            .fetch_one(&pool)
            .await
            .unwrap();
        let none = sqlx::query("SELECT name FROM users WHERE id = ?")
            .bind(99)
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert!(none.is_none());
        // A raw string is run unprepared.
        sqlx::raw_sql("UPDATE users SET name = 'x' WHERE id = 1")
            .execute(&pool)
            .await
            .unwrap();
        (all.len(), one.0)
    })
    .await;
    assert_eq!(names, (3, "carol".to_string()));

    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO users (name) VALUES (?1), (?2), (?)",
            "SELECT name FROM users WHERE id > ? ORDER BY id",
            "SELECT name FROM users WHERE name = ?",
            "SELECT name FROM users WHERE id = ?",
            "UPDATE users SET name = ? WHERE id = ?",
        ]
    );
    for d in &q {
        assert_eq!(d.name, "memory");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        assert!(!d.error && !d.fault && d.cause.is_none(), "{}", d.to_json());
        assert!(d.end_time.unwrap().as_secs_f64() >= d.start_time.as_secs_f64());
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(sql.database_type.as_deref(), Some("SQLite"));
        assert_eq!(sql.database_version.as_deref(), Some(version.as_str()));
        assert_eq!(sql.driver_version.as_deref(), Some("sqlx-0.8"));
        assert_eq!(sql.preparation.as_deref(), Some("statement"));
        assert_eq!(sql.url, None);
    }
    assert_eq!(meta(q[1], "db.response.affected_rows"), 3);
    assert_eq!(meta(q[2], "db.response.returned_rows"), 3);
    assert_eq!(meta(q[3], "db.response.returned_rows"), 1);
    assert_eq!(meta(q[4], "db.response.returned_rows"), 0);
    assert_eq!(meta(q[5], "db.response.affected_rows"), 1);
    // The version query ran outside the segment: only the application's statements are here.
    assert_eq!(doc.subsegment_count(), 6);
}

#[tokio::test]
async fn outside_a_segment_or_unsampled_nothing_is_recorded_and_queries_work() {
    let (collector, _recorder) = collector();
    let pool = memory_pool().await;
    let n: i64 = sqlx::query_scalar("SELECT 40 + 2")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 42);

    let unsampled = xray_core::Recorder::builder()
        .daemon_address(collector.daemon_address())
        .sampler(xray_core::sampling::NeverSample)
        .ignore_env()
        .build()
        .unwrap();
    let segment = unsampled.begin_segment("unsampled", None);
    let rows = xray_core::context::scope(segment.clone(), async {
        sqlx::query("SELECT 1").fetch_all(&pool).await.unwrap()
    })
    .await;
    segment.end();
    assert_eq!(rows.len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        collector.documents().is_empty(),
        "{:?}",
        collector.documents()
    );
}

#[tokio::test]
async fn on_disk_with_a_transaction_and_a_connection() {
    let (collector, recorder) = collector();
    let dir = std::env::temp_dir().join(format!("xray-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("orders.db");
    let _ = std::fs::remove_file(&path);
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    let pool = XRayPool::new(pool);

    let (total, doc) = traced(&recorder, &collector, async {
        sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO orders (amount) VALUES (?)")
            .bind(10)
            .execute(&mut tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO orders (amount) VALUES (32)")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let total: i64 = sqlx::query("SELECT SUM(amount) AS total FROM orders")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get("total");
        total
    })
    .await;
    assert_eq!(total, 42);
    let q = queries(&doc);
    assert_eq!(q.len(), 4, "{}", doc.to_json());
    assert!(q.iter().all(|d| d.name == "orders.db"));
    assert_eq!(query_text(q[1]), "INSERT INTO orders (amount) VALUES (?)");
    assert_eq!(query_text(q[2]), "INSERT INTO orders (amount) VALUES (?)");
    assert_eq!(meta(q[3], "db.response.returned_rows"), 1);
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refused_statement_is_an_error_with_the_database_code() {
    let (collector, recorder) = collector();
    let pool = memory_pool().await;
    let (result, doc) = traced(&recorder, &collector, async {
        sqlx::query("SELECT * FROM missing_table")
            .fetch_all(&pool)
            .await
    })
    .await;
    assert!(result.is_err());
    let q = queries(&doc);
    assert_eq!(q.len(), 1);
    assert_flags(q[0], true, false);
    let (kind, message) = cause(q[0]);
    assert_eq!(kind, "1"); // SQLITE_ERROR
    assert!(message.contains("no such table"), "{message}");
    // The failure is the query's, not the segment's.
    assert!(!doc.error && !doc.fault);
}

#[tokio::test]
async fn a_query_dropped_before_it_finished_is_cancelled_once() {
    let (collector, recorder) = collector();
    let pool = memory_pool().await;
    let slow =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) \
                SELECT count(*) FROM c";
    let (result, doc) = traced(&recorder, &collector, async {
        tokio::time::timeout(
            Duration::from_millis(100),
            sqlx::query_scalar::<_, i64>(slow).fetch_one(&pool),
        )
        .await
    })
    .await;
    assert!(result.is_err(), "the query should still have been running");
    let q = queries(&doc);
    assert_eq!(q.len(), 1);
    assert_flags(q[0], true, false);
    assert_eq!(cause(q[0]).0, "Cancelled");
    assert_eq!(
        query_text(q[0]),
        "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) SELECT count(*) FROM c"
    );
}

#[tokio::test]
async fn a_stream_dropped_before_any_row_is_cancelled_and_after_rows_succeeds() {
    use futures_util::StreamExt;
    let (collector, recorder) = collector();
    let pool = memory_pool().await;
    let (_, doc) = traced(&recorder, &collector, async {
        let mut rows = sqlx::query("SELECT 1 UNION ALL SELECT 2").fetch(&pool);
        let first = rows.next().await.unwrap().unwrap();
        assert_eq!(first.get::<i64, _>(0), 1);
        drop(rows);
        let never_polled = sqlx::query("SELECT 3").fetch(&pool);
        drop(never_polled);
    })
    .await;
    let q = queries(&doc);
    assert_eq!(q.len(), 2);
    assert!(!q[0].error && !q[0].fault);
    assert_eq!(meta(q[0], "db.response.returned_rows"), 1);
    assert_flags(q[1], true, false);
    assert_eq!(cause(q[1]).0, "Cancelled");
}

#[tokio::test]
async fn a_pool_timeout_is_a_fault() {
    let (collector, recorder) = collector();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let pool = XRayPool::new(pool);
    pool.database_version().await;
    let held = pool.inner().acquire().await.unwrap();
    let (result, doc) = traced(&recorder, &collector, async {
        sqlx::query("SELECT 1").execute(&pool).await
    })
    .await;
    drop(held);
    assert!(
        matches!(result, Err(sqlx::Error::PoolTimedOut)),
        "{result:?}"
    );
    let q = queries(&doc);
    assert_eq!(q.len(), 1);
    assert_flags(q[0], false, true);
    assert_eq!(cause(q[0]).0, "PoolTimedOut");
    // The pool still works afterwards.
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
}

#[tokio::test]
async fn secrets_and_megabyte_statements_never_reach_the_trace() {
    let (collector, recorder) = collector();
    let pool = memory_pool().await;
    let mut big = String::from("SELECT count(*) FROM (");
    let mut first = true;
    while big.len() < 1 << 20 {
        if !first {
            big.push_str(" UNION ALL ");
        }
        first = false;
        big.push_str("SELECT 'hunter2' AS pw, 123456789 AS n");
    }
    big.push(')');
    let (n, doc) = traced(&recorder, &collector, async {
        sqlx::query("CREATE TABLE creds (user TEXT, password TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO creds VALUES ('admin', 'hunter2') -- password: hunter2")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>(&big)
            .fetch_one(&pool)
            .await
            .unwrap_or(-1)
    })
    .await;
    assert!(n != 0);
    let q = queries(&doc);
    assert_eq!(q.len(), 3);
    assert_eq!(query_text(q[1]), "INSERT INTO creds VALUES (?, ?)");
    let text = query_text(q[2]);
    assert!(text.len() <= 2048 && text.ends_with('…'), "{}", text.len());
    assert!(text.starts_with("SELECT count(*) FROM (SELECT ? AS pw, ? AS n UNION ALL"));
    let json = doc.to_json();
    assert!(!json.contains("hunter2") && !json.contains("123456789"));
    // The whole document stays well under a UDP datagram.
    assert!(json.len() < 20_000, "{}", json.len());
}
