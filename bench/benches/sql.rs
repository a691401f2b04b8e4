//! What recording a SQL query costs: the same sqlx query on SQLite in memory through the
//! plain pool, through `XRayPool` inside a sampled segment, and through `XRayPool` outside
//! any segment; and the recording alone (`QuerySpan` begun and ended, no driver).
//!
//! `cargo bench -p bench --bench sql`

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sqlx::{Sqlite, SqlitePool};
use xray_core::sampling::AlwaysSample;
use xray_core::{context, emitter::Emitter, Document, Recorder};
use xray_sql::sqlx::XRayPool;
use xray_sql::{ConnectionFacts, ConnectionParts, Dialect, QuerySpan, SqlOptions};

/// Drops documents: measures the recorder, not an emitter.
#[derive(Debug)]
struct Discard;
impl Emitter for Discard {
    fn emit(&self, document: Document) {
        black_box(document);
    }
}

fn recorder() -> Recorder {
    Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(Discard)
        .ignore_env()
        .build()
        .unwrap()
}

const QUERY: &str = "SELECT id, name FROM users WHERE id = ?1 AND name <> 'nobody'";

async fn one_query<'e, E>(executor: E)
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let row = sqlx::query(QUERY)
        .bind(1_i64)
        .fetch_optional(executor)
        .await
        .unwrap();
    black_box(row);
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain: SqlitePool = rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('ann'), ('bob');",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool
    });
    let traced = XRayPool::new(plain.clone());
    rt.block_on(traced.database_version());
    let recorder = recorder();

    let mut g = c.benchmark_group("sqlite_query");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("plain sqlx", |b| b.iter(|| rt.block_on(one_query(&plain))));
    g.bench_function("XRayPool, sampled segment", |b| {
        b.iter_custom(|iters| {
            // One segment per batch; its finished subsegments stream out as they pile up.
            let segment = recorder.begin_segment("bench", None);
            let start = Instant::now();
            rt.block_on(context::scope(segment.clone(), async {
                for _ in 0..iters {
                    one_query(&traced).await;
                }
            }));
            let elapsed = start.elapsed();
            segment.end();
            elapsed
        })
    });
    g.bench_function("XRayPool, no segment", |b| {
        b.iter(|| rt.block_on(one_query(&traced)))
    });
    g.finish();
}

fn recording_alone(c: &mut Criterion) {
    let recorder = recorder();
    let facts = ConnectionFacts::new(
        ConnectionParts {
            dialect: Dialect::Sqlite,
            database_type: "SQLite",
            driver_version: "sqlx-0.8",
            database: Some("memory"),
            host: None,
            ..ConnectionParts::default()
        },
        SqlOptions::default(),
    );
    facts.set_database_version("3.46.0");
    let mut g = c.benchmark_group("query_span");
    g.bench_function("sampled: begin, rows, end", |b| {
        b.iter_custom(|iters| {
            let segment = recorder.begin_segment("bench", None);
            let start = Instant::now();
            context::sync_scope(segment.clone(), || {
                for _ in 0..iters {
                    let mut span = QuerySpan::begin(&facts, black_box(QUERY)).unwrap();
                    span.add_returned(1);
                    span.succeed();
                }
            });
            let elapsed = start.elapsed();
            segment.end();
            elapsed
        })
    });
    g.bench_function("no segment: begin", |b| {
        b.iter(|| black_box(QuerySpan::begin(&facts, black_box(QUERY)).is_none()))
    });
    g.bench_function("sanitize the statement", |b| {
        b.iter(|| xray_sql::sanitize_query(black_box(QUERY), Dialect::Sqlite, 2048))
    });
    g.finish();
}

criterion_group!(benches, queries, recording_alone);
criterion_main!(benches);
