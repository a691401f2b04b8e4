//! tokio-postgres against the real PostgreSQL `scripts/start-databases` starts
//! (`XRAY_TEST_POSTGRES_URL`): queries, prepared statements, transactions, database errors,
//! a connection killed mid-query and a cancelled query, as a real UDP collector received them.

mod common;

use std::time::Duration;

use common::*;
use tokio_postgres::{Config, NoTls};
use xray_sql::tokio_postgres::XRayClient;

async fn connect(url: &str) -> (XRayClient, Config) {
    let config: Config = url.parse().expect("a PostgreSQL URL");
    let (client, connection) = config.connect(NoTls).await.expect("PostgreSQL");
    tokio::spawn(connection);
    (XRayClient::new(client, &config), config)
}

#[tokio::test]
async fn queries_prepared_statements_transactions_and_errors() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let (mut client, _) = connect(&url).await;
    let table = format!("tp_items_{}", std::process::id());

    let (res, doc) = traced(&recorder, &collector, async {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"
            ))
            .await
            .unwrap();
        let insert = client
            .prepare(&format!("INSERT INTO {table} (label) VALUES ($1)"))
            .await
            .unwrap();
        let n = client.execute(&insert, &[&"pen"]).await.unwrap();
        let tx = client.transaction().await.unwrap();
        let m = tx
            .execute(
                &format!("INSERT INTO {table} (label) VALUES ('secret label'), ($1)"),
                &[&"ink"],
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = client
            .query(&format!("SELECT id FROM {table} WHERE id > $1"), &[&0_i32])
            .await
            .unwrap();
        let missing = client.query_opt("SELECT * FROM no_such_table", &[]).await;
        client
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
        (n, m, rows.len(), missing.is_err())
    })
    .await;
    assert_eq!(res, (1, 2, 3, true));

    let q = queries(&doc);
    let texts: Vec<&str> = q.iter().map(|d| query_text(d)).collect();
    assert_eq!(
        texts,
        [
            format!("CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT)"),
            format!("INSERT INTO {table} (label) VALUES ($1)"),
            format!("INSERT INTO {table} (label) VALUES (?), ($1)"),
            format!("SELECT id FROM {table} WHERE id > $1"),
            "SELECT * FROM no_such_table".to_string(),
            format!("DROP TABLE {table}"),
        ]
    );
    for d in &q {
        assert_eq!(d.name, "xray_test@127.0.0.1");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(sql.driver_version.as_deref(), Some("tokio-postgres-0.7"));
        assert_eq!(sql.user.as_deref(), Some("xray"));
        assert!(sql
            .url
            .as_deref()
            .unwrap()
            .starts_with("postgresql://xray@127.0.0.1:"));
        assert!(sql.database_version.is_some(), "{}", d.to_json());
    }
    assert_eq!(meta(q[1], "db.response.affected_rows"), 1);
    assert_eq!(meta(q[2], "db.response.affected_rows"), 2);
    assert_eq!(meta(q[3], "db.response.returned_rows"), 3);
    assert_flags(q[4], true, false);
    assert_eq!(cause(q[4]).0, "42P01");
    let json = doc.to_json();
    assert!(!json.contains("secret label") && !json.contains("xray-test-pw"));
    // The version query ran before the first recorded query, outside any subsegment.
    assert!(!json.contains("server_version"));
}

#[tokio::test]
async fn killed_connection_is_a_fault_and_a_dropped_query_is_cancelled() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let (victim, _) = connect(&url).await;
    let (killer, _) = connect(&url).await;
    let (other, _) = connect(&url).await;
    let pid: i32 = victim
        .inner()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let (results, doc) = traced(&recorder, &collector, async {
        let kill = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            killer
                .inner()
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .unwrap();
        };
        let (killed, ()) = tokio::join!(victim.execute("SELECT pg_sleep(30)", &[]), kill);
        let timed_out = tokio::time::timeout(
            Duration::from_millis(200),
            other.query("SELECT pg_sleep(5)", &[]),
        )
        .await;
        (killed.is_err(), timed_out.is_err())
    })
    .await;
    assert_eq!(results, (true, true));
    let q = queries(&doc);
    assert_eq!(q.len(), 2, "{}", doc.to_json());
    assert_flags(q[0], false, true);
    let (code, _) = cause(q[0]);
    assert!(code == "57P01" || code == "ConnectionError", "{code}");
    assert_flags(q[1], true, false);
    assert_eq!(cause(q[1]).0, "Cancelled");
}
