//! diesel-async against the real PostgreSQL `scripts/start-databases` starts
//! (`XRAY_TEST_POSTGRES_URL`): queries with the server's version, database errors, pipelined
//! queries, a cancelled query, a connection killed mid-query, and the pool setup callback, as
//! a real UDP collector received them.

mod common;

use std::time::Duration;

use common::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::QueryableByName;
use diesel_async::pooled_connection::ManagerConfig;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use xray_sql::diesel_async::establish;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn postgres() -> Option<String> {
    server_url("XRAY_TEST_POSTGRES_URL")
}

#[tokio::test]
async fn queries_errors_and_the_server_version() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, recorder) = collector();
    let mut conn = establish(&url).await.expect("PostgreSQL");
    let table = format!("da_items_{}", std::process::id());

    let (res, doc) = traced(&recorder, &collector, async {
        conn.batch_execute(&format!(
            "CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"
        ))
        .await
        .unwrap();
        let inserted = diesel::sql_query(format!(
            "INSERT INTO {table} (label) VALUES ($1), ('literal secret')"
        ))
        .bind::<Text, _>("hunter2")
        .execute(&mut conn)
        .await
        .unwrap();
        let n = diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE id > 0"))
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n;
        let missing = diesel::sql_query("SELECT * FROM no_such_table")
            .execute(&mut conn)
            .await
            .is_err();
        conn.batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
        (inserted, n, missing)
    })
    .await;
    assert_eq!(res, (2, 2, true));

    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            format!("CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"),
            format!("INSERT INTO {table} (label) VALUES ($1), (?)"),
            format!("SELECT count(*) AS n FROM {table} WHERE id > ?"),
            "SELECT * FROM no_such_table".to_string(),
            format!("DROP TABLE {table}"),
        ]
    );
    for d in &q {
        assert_eq!(d.name, "xray_test@127.0.0.1");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(sql.database_type.as_deref(), Some("PostgreSQL"));
        assert_eq!(sql.driver_version.as_deref(), Some("diesel-async-0.10"));
        assert_eq!(sql.user.as_deref(), Some("xray"));
        let u = sql.url.as_deref().unwrap();
        assert!(u.starts_with("postgres://xray@127.0.0.1:"), "{u}");
        let version = sql.database_version.as_deref().unwrap_or("");
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{version:?}"
        );
        assert!(d.start_time <= d.end_time.unwrap());
    }
    for d in [q[0], q[1], q[2], q[4]] {
        assert!(!d.error && !d.fault && d.cause.is_none(), "{}", d.to_json());
    }
    assert_flags(q[3], true, false);
    let (code, message) = cause(q[3]);
    assert_eq!(code, "42P01");
    assert!(message.contains("no_such_table"), "{message}");
    let json = doc.to_json();
    assert!(
        !json.contains("hunter2") && !json.contains("literal secret") && !json.contains("pw"),
        "{json}"
    );
}

#[tokio::test]
async fn pipelined_queries_and_a_cancelled_query() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, recorder) = collector();
    let mut conn = establish(&url).await.expect("PostgreSQL");

    let (res, doc) = traced(&recorder, &collector, async {
        // Two queries in flight at once on a shared connection.
        let (mut a, mut b) = (&conn, &conn);
        let both = futures_util::future::try_join(
            diesel::sql_query("SELECT 1 AS first_one").execute(&mut a),
            diesel::sql_query("SELECT 2 AS second_one").execute(&mut b),
        )
        .await
        .unwrap();
        // Dropped by the timeout before the server answers.
        let timed_out = tokio::time::timeout(
            Duration::from_millis(200),
            diesel::sql_query("SELECT pg_sleep(1)").execute(&mut conn),
        )
        .await
        .is_err();
        let after = diesel::sql_query("SELECT 3 AS after_it")
            .execute(&mut conn)
            .await
            .unwrap();
        (both, timed_out, after)
    })
    .await;
    assert_eq!(res, ((1, 1), true, 1));

    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            "SELECT ? AS first_one",
            "SELECT ? AS second_one",
            "SELECT pg_sleep(?)",
            "SELECT ? AS after_it",
        ]
    );
    for d in [q[0], q[1], q[3]] {
        assert!(!d.error && !d.fault && d.cause.is_none(), "{}", d.to_json());
        assert!(d.end_time.is_some());
    }
    assert_flags(q[2], true, false);
    assert_eq!(cause(q[2]).0, "Cancelled");
}

#[tokio::test]
async fn a_connection_killed_mid_query_is_a_fault() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, recorder) = collector();
    let mut victim = establish(&url).await.expect("PostgreSQL");
    let mut killer = establish(&url).await.expect("PostgreSQL");
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut victim)
        .await
        .unwrap()
        .pid;

    let (failed, doc) = traced(&recorder, &collector, async {
        let kill = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
                .execute(&mut killer)
                .await
        };
        let (slow, killed) = tokio::join!(
            diesel::sql_query("SELECT pg_sleep(5)").execute(&mut victim),
            kill
        );
        killed.unwrap();
        slow.is_err()
    })
    .await;
    assert!(failed);

    let q = queries(&doc);
    let slow = q
        .iter()
        .find(|d| query_text(d) == "SELECT pg_sleep(?)")
        .unwrap_or_else(|| panic!("{}", doc.to_json()));
    assert_flags(slow, false, true);
    let (code, message) = cause(slow);
    assert!(
        code == "57P01" || code == "UnableToSendCommand",
        "{code}: {message}"
    );
    assert_eq!(q.len(), 2, "{}", doc.to_json());
}

#[tokio::test]
async fn the_pool_setup_callback_records_pooled_connections() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, recorder) = collector();
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(establish);
    let mut conn = (config.custom_setup)(&url).await.expect("PostgreSQL");
    let (n, doc) = traced(&recorder, &collector, async {
        diesel::sql_query("SELECT 7 AS seven")
            .execute(&mut conn)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(n, 1);
    let q = queries(&doc);
    assert_eq!(q.len(), 1, "{}", doc.to_json());
    assert_eq!(query_text(q[0]), "SELECT ? AS seven");
    let sql = q[0].sql.as_ref().unwrap();
    assert!(sql.database_version.is_some(), "{}", doc.to_json());
}

#[tokio::test]
async fn a_dead_server_fails_to_connect_and_nothing_is_recorded() {
    let (collector, recorder) = collector();
    let url = format!(
        "postgres://xray:pw@127.0.0.1:{}/xray_test?connect_timeout=2",
        closed_port()
    );
    let (res, doc) = traced(&recorder, &collector, establish(&url)).await;
    assert!(res.is_err());
    assert!(queries(&doc).is_empty(), "{}", doc.to_json());
}

#[tokio::test]
async fn outside_a_segment_nothing_is_recorded() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, _recorder) = collector();
    let mut conn = establish(&url).await.expect("PostgreSQL");
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(collector.documents().is_empty());
}

#[tokio::test]
async fn a_dropped_query_ends_when_its_connection_is_dropped() {
    let Some(url) = postgres() else {
        return;
    };
    let (collector, recorder) = collector();
    let conn = establish(&url).await.expect("PostgreSQL");

    let (timed_out, doc) = traced(&recorder, &collector, async move {
        let mut conn = conn;
        let timed_out = tokio::time::timeout(
            Duration::from_millis(100),
            diesel::sql_query("SELECT pg_sleep(1)").execute(&mut conn),
        )
        .await
        .is_err();
        drop(conn);
        timed_out
    })
    .await;
    assert!(timed_out);
    let q = queries(&doc);
    assert_eq!(q.len(), 1, "{}", doc.to_json());
    assert_flags(q[0], true, false);
    assert_eq!(cause(q[0]).0, "Cancelled");
}
