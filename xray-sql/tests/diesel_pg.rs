//! Synchronous diesel (libpq) against the real PostgreSQL `scripts/start-databases` starts
//! (`XRAY_TEST_POSTGRES_URL`): queries with the server's version, a transaction, database
//! errors with their SQLSTATE, and a connection killed mid-query, as a real UDP collector
//! received them.

mod common;

use std::time::Duration;

use common::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use xray_sql::diesel::establish_pg;

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

#[test]
fn queries_transactions_errors_and_the_server_version() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let mut conn = establish_pg(&url).expect("PostgreSQL");
    let table = format!("dp_items_{}", std::process::id());

    let segment = recorder.begin_segment("diesel-pg", None);
    let res = xray_core::context::sync_scope(segment.clone(), || {
        conn.batch_execute(&format!(
            "CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"
        ))
        .unwrap();
        let inserted = conn
            .transaction(|conn| {
                diesel::sql_query(format!(
                    "INSERT INTO {table} (label) VALUES ($1), ('literal secret')"
                ))
                .bind::<Text, _>("hunter2")
                .execute(conn)
            })
            .unwrap();
        let n = diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE id > 0"))
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
        let missing = diesel::sql_query("SELECT * FROM no_such_table")
            .execute(&mut conn)
            .is_err();
        conn.batch_execute(&format!("DROP TABLE {table}")).unwrap();
        (inserted, n, missing)
    });
    segment.end();
    assert_eq!(res, (2, 2, true));

    let doc = segment_doc(&collector, segment.trace_id());
    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            format!("CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"),
            "BEGIN".to_string(),
            format!("INSERT INTO {table} (label) VALUES ($1), (?)"),
            "COMMIT".to_string(),
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
        assert_eq!(sql.driver_version.as_deref(), Some("diesel-2"));
        assert_eq!(sql.user.as_deref(), Some("xray"));
        let u = sql.url.as_deref().unwrap();
        assert!(u.starts_with("postgres://xray@127.0.0.1:"), "{u}");
        let version = sql.database_version.as_deref().unwrap_or("");
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{version:?}"
        );
        assert!(d.metadata.get("default").is_none(), "{}", d.to_json());
    }
    for (i, d) in q.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert!(
            !d.error && !d.fault && d.cause.is_none(),
            "{i}: {}",
            d.to_json()
        );
    }
    assert_flags(q[5], true, false);
    let (code, message) = cause(q[5]);
    assert_eq!(code, "42P01");
    assert!(message.contains("no_such_table"), "{message}");
    let json = doc.to_json();
    assert!(
        !json.contains("hunter2") && !json.contains("literal secret") && !json.contains("pw"),
        "{json}"
    );
}

#[test]
fn a_connection_killed_mid_query_is_a_fault() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let mut victim = establish_pg(&url).expect("PostgreSQL");
    let mut killer = establish_pg(&url).expect("PostgreSQL");
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut victim)
        .unwrap()
        .pid;
    let kill = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut killer)
            .unwrap();
    });

    let segment = recorder.begin_segment("diesel-pg-kill", None);
    let failed = xray_core::context::sync_scope(segment.clone(), || {
        diesel::sql_query("SELECT pg_sleep(5)")
            .execute(&mut victim)
            .is_err()
    });
    segment.end();
    kill.join().unwrap();
    assert!(failed);

    let doc = segment_doc(&collector, segment.trace_id());
    let q = queries(&doc);
    assert_eq!(q.len(), 1, "{}", doc.to_json());
    assert_eq!(query_text(q[0]), "SELECT pg_sleep(?)");
    assert_flags(q[0], false, true);
    let (code, message) = cause(q[0]);
    assert!(
        code == "57P01" || code == "ClosedConnection" || code == "UnableToSendCommand",
        "{code}: {message}"
    );
}
