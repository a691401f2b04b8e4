//! sqlx against real PostgreSQL and MariaDB servers (started by `scripts/start-databases`,
//! located by `XRAY_TEST_POSTGRES_URL` and `XRAY_TEST_MYSQL_URL`): names, `sql` blocks,
//! transactions, database errors, connections killed mid-query, cancelled queries and dead
//! servers, as received by a real UDP collector.

mod common;

use std::time::Duration;

use common::*;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{MySql, Postgres};
use xray_sql::sqlx::XRayPool;

async fn pg_pool(url: &str) -> XRayPool<Postgres> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .expect("PostgreSQL from XRAY_TEST_POSTGRES_URL");
    XRayPool::new(pool)
}

async fn my_pool(url: &str) -> XRayPool<MySql> {
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .expect("MariaDB from XRAY_TEST_MYSQL_URL");
    XRayPool::new(pool)
}

fn host_port(url: &str) -> String {
    let after = url.split_once('@').unwrap().1;
    after.split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn postgres_queries_transactions_and_errors() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let pool = pg_pool(&url).await;
    let version = pool.database_version().await.expect("server version");
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    let table = format!("items_{}", std::process::id());

    let (res, doc) = traced(&recorder, &collector, async {
        sqlx::query(&format!(
            "CREATE TABLE {table} (id SERIAL PRIMARY KEY, label TEXT, price NUMERIC)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO {table} (label, price) VALUES ($1, 9.99), ($$it's$$, $2)"
        ))
        .bind("pen")
        .bind(1.5_f64)
        .execute(&mut tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let rows = sqlx::query(&format!("SELECT id FROM {table} WHERE label <> E'x\\'y'"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(&pool)
            .await;
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&pool)
            .await
            .unwrap();
        (rows.len(), missing.is_err())
    })
    .await;
    assert_eq!(res, (2, true));

    let q = queries(&doc);
    assert_eq!(q.len(), 5, "{}", doc.to_json());
    for d in &q {
        assert_eq!(d.name, "xray_test@127.0.0.1");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(
            sql.url.as_deref(),
            Some(format!("postgresql://xray@{}/xray_test", host_port(&url)).as_str())
        );
        assert_eq!(sql.user.as_deref(), Some("xray"));
        assert_eq!(sql.database_type.as_deref(), Some("PostgreSQL"));
        assert_eq!(sql.database_version.as_deref(), Some(version.as_str()));
    }
    assert_eq!(
        query_text(q[1]),
        format!("INSERT INTO {table} (label, price) VALUES ($1, ?), (?, $2)")
    );
    assert_eq!(meta(q[1], "db.response.affected_rows"), 2);
    assert_eq!(
        query_text(q[2]),
        format!("SELECT id FROM {table} WHERE label <> ?")
    );
    assert_eq!(meta(q[2], "db.response.returned_rows"), 2);
    assert_flags(q[3], true, false);
    let (code, message) = cause(q[3]);
    assert_eq!(code, "42P01");
    assert!(message.contains("no_such_table"), "{message}");
    assert!(!doc.to_json().contains("xray-test-pw"));
}

#[tokio::test]
async fn postgres_connection_killed_mid_query_is_a_fault() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let pool = pg_pool(&url).await;
    pool.database_version().await;
    let killer = pg_pool(&url).await;
    let (result, doc) = traced(&recorder, &collector, async {
        let victim = pool.acquire().await.unwrap();
        let mut victim = victim;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut victim)
            .await
            .unwrap();
        let kill = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Another connection ends the backend that runs the slow query.
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(killer.inner())
                .await
                .unwrap();
        };
        let (r, ()) = tokio::join!(
            sqlx::query("SELECT pg_sleep(30)").execute(&mut victim),
            kill
        );
        r
    })
    .await;
    assert!(result.is_err());
    let q = queries(&doc);
    assert_eq!(q.len(), 2, "{}", doc.to_json());
    assert_eq!(query_text(q[1]), "SELECT pg_sleep(?)");
    assert_flags(q[1], false, true);
    let (code, _) = cause(q[1]);
    assert!(
        code == "57P01" || code == "Io" || code == "Protocol",
        "{code}"
    );
    // The pool recovers.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn postgres_cancelled_query_and_dead_server() {
    let Some(url) = server_url("XRAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let pool = pg_pool(&url).await;
    pool.database_version().await;
    let dead = XRayPool::new(
        PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy(&format!(
                "postgres://xray:secret@127.0.0.1:{}/gone",
                closed_port()
            ))
            .unwrap(),
    );
    let (results, doc) = traced(&recorder, &collector, async {
        let timed_out = tokio::time::timeout(
            Duration::from_millis(200),
            sqlx::query("SELECT pg_sleep(5)").execute(&pool),
        )
        .await;
        let refused = sqlx::query("SELECT 1").execute(&dead).await;
        (timed_out.is_err(), refused.is_err())
    })
    .await;
    assert_eq!(results, (true, true));
    let q = queries(&doc);
    assert_eq!(q.len(), 2);
    assert_flags(q[0], true, false);
    assert_eq!(cause(q[0]).0, "Cancelled");
    assert_eq!(q[1].name, "gone@127.0.0.1");
    assert_flags(q[1], false, true);
    let url_field = q[1].sql.as_ref().unwrap().url.clone().unwrap();
    assert!(!url_field.contains("secret"), "{url_field}");
}

#[tokio::test]
async fn mariadb_queries_transactions_and_errors() {
    let Some(url) = server_url("XRAY_TEST_MYSQL_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let pool = my_pool(&url).await;
    let version = pool.database_version().await.expect("server version");
    assert!(version.contains("MariaDB"), "{version}");
    let table = format!("items_{}", std::process::id());

    let (res, doc) = traced(&recorder, &collector, async {
        sqlx::query(&format!(
            "CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, label TEXT)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO {table} (label) VALUES (?), (\"it's\"), ('a\\'b')"
        ))
        .bind("pen")
        .execute(&mut tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let rows = sqlx::query(&format!("SELECT id FROM {table} WHERE id > 0 # all"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(&pool)
            .await;
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&pool)
            .await
            .unwrap();
        (rows.len(), missing.is_err())
    })
    .await;
    assert_eq!(res, (3, true));
    let q = queries(&doc);
    assert_eq!(q.len(), 5, "{}", doc.to_json());
    for d in &q {
        assert_eq!(d.name, "xray_test@127.0.0.1");
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(
            sql.url.as_deref(),
            Some(format!("mysql://xray@{}/xray_test", host_port(&url)).as_str())
        );
        assert_eq!(sql.database_type.as_deref(), Some("MySQL"));
        assert_eq!(sql.database_version.as_deref(), Some(version.as_str()));
    }
    assert_eq!(
        query_text(q[1]),
        format!("INSERT INTO {table} (label) VALUES (?), (?), (?)")
    );
    assert_eq!(meta(q[1], "db.response.affected_rows"), 3);
    assert_eq!(
        query_text(q[2]),
        format!("SELECT id FROM {table} WHERE id > ?")
    );
    assert_eq!(meta(q[2], "db.response.returned_rows"), 3);
    assert_flags(q[3], true, false);
    let (code, message) = cause(q[3]);
    assert_eq!(code, "1146"); // ER_NO_SUCH_TABLE
    assert!(message.contains("no_such_table"), "{message}");
}

#[tokio::test]
async fn mariadb_connection_killed_mid_query_is_a_fault() {
    let Some(url) = server_url("XRAY_TEST_MYSQL_URL") else {
        return;
    };
    let (collector, recorder) = collector();
    let pool = my_pool(&url).await;
    pool.database_version().await;
    let killer = my_pool(&url).await;
    let (result, doc) = traced(&recorder, &collector, async {
        let mut victim = pool.acquire().await.unwrap();
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut victim)
            .await
            .unwrap();
        let kill = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::query(&format!("KILL CONNECTION {id}"))
                .execute(killer.inner())
                .await
                .unwrap();
        };
        let (r, ()) = tokio::join!(sqlx::query("SELECT SLEEP(30)").execute(&mut victim), kill);
        r
    })
    .await;
    let q = queries(&doc);
    assert_eq!(q.len(), 2, "{}", doc.to_json());
    assert!(result.is_err(), "{result:?}");
    assert_flags(q[1], false, true);
}
