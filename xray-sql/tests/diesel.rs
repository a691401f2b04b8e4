//! diesel on SQLite (in memory and on disk) through its `Instrumentation` hook: each query a
//! subsegment of the segment current on the thread, bound values cut off, errors recorded,
//! as a real UDP collector received them.

mod common;

use common::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use xray_sql::diesel::XRayInstrumentation;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn queries_on_sqlite_are_subsegments_without_bound_values() {
    let (collector, recorder) = collector();
    let dir = std::env::temp_dir().join(format!("xray-sql-diesel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shop.db");
    let _ = std::fs::remove_file(&path);
    let url = path.to_string_lossy().into_owned();

    let segment = recorder.begin_segment("diesel-job", None);
    let (n, failed) = xray_core::context::sync_scope(segment.clone(), || {
        let mut conn = SqliteConnection::establish(&url).unwrap();
        conn.set_instrumentation(XRayInstrumentation::for_url(&url));
        conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .unwrap();
        diesel::sql_query("INSERT INTO users (name) VALUES (?), ('literal secret')")
            .bind::<Text, _>("hunter2")
            .execute(&mut conn)
            .unwrap();
        let n = diesel::sql_query("SELECT count(*) AS n FROM users WHERE id > 0")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
        let failed = diesel::sql_query("SELECT * FROM missing")
            .execute(&mut conn)
            .is_err();
        (n, failed)
    });
    segment.end();
    assert_eq!((n, failed), (2, true));

    let doc = segment_doc(&collector, segment.trace_id());
    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO users (name) VALUES (?), (?)",
            "SELECT count(*) AS n FROM users WHERE id > ?",
            "SELECT * FROM missing",
        ]
    );
    for d in &q {
        assert_eq!(d.name, "shop.db");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(sql.database_type.as_deref(), Some("SQLite"));
        assert_eq!(sql.driver_version.as_deref(), Some("diesel-2"));
    }
    assert!(!q[1].error && !q[1].fault && q[1].end_time.is_some());
    assert_flags(q[3], true, false);
    let (_, message) = cause(q[3]);
    assert!(message.contains("no such table"), "{message}");
    let json = doc.to_json();
    assert!(
        !json.contains("hunter2") && !json.contains("literal secret"),
        "{json}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outside_a_segment_nothing_is_recorded() {
    let (collector, _recorder) = collector();
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    conn.set_instrumentation(XRayInstrumentation::for_url(":memory:"));
    conn.batch_execute("SELECT 1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(collector.documents().is_empty());
}

#[test]
fn the_default_instrumentation_learns_the_connection_from_its_url() {
    use diesel::connection::{set_default_instrumentation, Instrumentation};
    let (collector, recorder) = collector();
    set_default_instrumentation(|| {
        Some(Box::new(XRayInstrumentation::new()) as Box<dyn Instrumentation>)
    })
    .unwrap();
    let segment = recorder.begin_segment("diesel-default", None);
    xray_core::context::sync_scope(segment.clone(), || {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("SELECT 42").unwrap();
    });
    segment.end();
    let doc = segment_doc(&collector, segment.trace_id());
    let q = queries(&doc);
    assert_eq!(q.len(), 1, "{}", doc.to_json());
    assert_eq!(q[0].name, "memory");
    assert_eq!(query_text(q[0]), "SELECT ?");
}
