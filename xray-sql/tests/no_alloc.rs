//! Outside a sampled segment, recording a query allocates nothing and takes no lock: the
//! check is one thread-local read. Measured with a counting global allocator: beginning a
//! query span, and building a query's future through `&XRayPool` versus through the plain
//! `&Pool` (same allocations, which are sqlx's own).

use allocation_counter::measure;
use sqlx::Executor as _;
use xray_core::sampling::NeverSample;
use xray_core::{context, Recorder};
use xray_sql::sqlx::XRayPool;
use xray_sql::{ConnectionFacts, ConnectionParts, Dialect, QuerySpan, SqlOptions};

fn facts() -> ConnectionFacts {
    ConnectionFacts::new(
        ConnectionParts {
            dialect: Dialect::Postgres,
            database_type: "PostgreSQL",
            driver_version: "sqlx-0.8",
            database: Some("db"),
            host: Some("host"),
            ..ConnectionParts::default()
        },
        SqlOptions::default(),
    )
}

#[test]
fn beginning_a_query_span_outside_a_sampled_segment_allocates_nothing() {
    let facts = facts();
    let sql = "SELECT * FROM t WHERE a = 'x' AND b = 42";
    // No segment at all.
    let info = measure(|| {
        for _ in 0..100 {
            assert!(QuerySpan::begin(&facts, sql).is_none());
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");

    // An unsampled segment is current.
    let recorder = Recorder::builder()
        .sampler(NeverSample)
        .emitter(xray_core::emitter::MemoryEmitter::new())
        .ignore_env()
        .build()
        .unwrap();
    let segment = recorder.begin_segment("unsampled", None);
    context::sync_scope(segment.clone(), || {
        let info = measure(|| {
            for _ in 0..100 {
                assert!(QuerySpan::begin(&facts, sql).is_none());
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
    });
    segment.end();
}

#[tokio::test(flavor = "current_thread")]
async fn an_untraced_query_through_xraypool_allocates_what_sqlx_does() {
    let plain = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let traced = XRayPool::new(plain.clone());
    traced.database_version().await;
    let sql = "SELECT 1 WHERE 'secret' <> ''";

    let direct = measure(|| {
        for _ in 0..50 {
            drop((&plain).fetch_optional(sqlx::query(sql)));
            drop((&plain).fetch_many(sqlx::query(sql)));
        }
    });
    let wrapped = measure(|| {
        for _ in 0..50 {
            drop((&traced).fetch_optional(sqlx::query(sql)));
            drop((&traced).fetch_many(sqlx::query(sql)));
        }
    });
    assert!(direct.count_total > 0);
    assert_eq!(
        wrapped.count_total, direct.count_total,
        "{wrapped:?} vs {direct:?}"
    );
    assert_eq!(wrapped.bytes_total, direct.bytes_total);
}
