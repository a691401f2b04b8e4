//! `GET /db/{n}` on `axum-service` and `actix-service`, started as child processes sending to
//! an in-test collector over real UDP: SQLite in memory by default, PostgreSQL and MariaDB
//! from `scripts/start-databases` when they run, and a database that is down.

mod common;

use common::{Options, Service};
use xray_core::Document;
use xray_local::Trace;

/// The query subsegments of the trace's only segment, in start order.
fn queries(trace: &Trace) -> Vec<Document> {
    let mut out: Vec<Document> = trace
        .entities()
        .iter()
        .map(|e| e.document())
        .filter(|d| d.sql.is_some())
        .cloned()
        .collect();
    out.sort_by_key(|d| d.start_time);
    out
}

fn start(bin: &str, database_url: Option<&str>) -> Service {
    let env: Vec<(&str, &str)> = database_url
        .map(|u| ("DATABASE_URL", u))
        .into_iter()
        .collect();
    Service::start_with(
        bin,
        Options {
            env: &env,
            ..Options::default()
        },
    )
}

async fn sqlite_in_memory_by_default(bin: &str) {
    let svc = start(bin, None);
    let (status, body, trace) = svc.traced("/db/3").await;
    assert_eq!((status, body.as_str()), (200, "3 rows\n"));
    let q = queries(&trace);
    assert_eq!(q.len(), 3, "{}", trace.outline());
    for d in &q {
        assert_eq!(d.name, "memory");
        assert_eq!(d.namespace.as_deref(), Some("remote"));
        let sql = d.sql.as_ref().unwrap();
        assert_eq!(sql.database_type.as_deref(), Some("SQLite"));
        assert_eq!(sql.sanitized_query.as_deref(), Some("SELECT ?1 AS n"));
        assert!(!d.error && !d.fault);
    }
    for path in ["/db/0", "/db/101", "/db/x"] {
        let (status, _, _) = svc.get(path).await;
        assert_eq!(status, 400, "{path}");
    }
}

async fn a_database_that_is_down_answers_502_with_a_fault(bin: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:pw@127.0.0.1:{port}/shop");
    let svc = start(bin, Some(&url));
    let (status, body, trace) = svc.traced("/db/2").await;
    assert_eq!(status, 502, "{body}");
    let q = queries(&trace);
    // The first query fails; the route stops there.
    assert_eq!(q.len(), 1, "{}", trace.outline());
    assert_eq!(q[0].name, "shop@127.0.0.1");
    assert!(q[0].fault && q[0].cause.is_some());
    let url_field = q[0].sql.as_ref().unwrap().url.clone().unwrap();
    assert!(!url_field.contains("pw"), "{url_field}");
    // The service keeps serving.
    let (status, _, _) = svc.get("/").await;
    assert_eq!(status, 200);
}

async fn real_servers_when_running(bin: &str) {
    for (var, kind) in [
        ("XRAY_TEST_POSTGRES_URL", "PostgreSQL"),
        ("XRAY_TEST_MYSQL_URL", "MySQL"),
    ] {
        let url = match std::env::var(var) {
            Ok(u) if !u.is_empty() => u,
            _ => {
                if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                    panic!("{var} is not set and XRAY_REQUIRE_PEERS=1");
                }
                eprintln!("skipped: {var} is not set (eval \"$(scripts/start-databases)\")");
                continue;
            }
        };
        let svc = start(bin, Some(&url));
        let (status, body, trace) = svc.traced("/db/2").await;
        assert_eq!((status, body.as_str()), (200, "2 rows\n"), "{kind}");
        let q = queries(&trace);
        assert_eq!(q.len(), 2, "{}", trace.outline());
        for d in &q {
            assert_eq!(d.name, "xray_test@127.0.0.1");
            assert_eq!(d.sql.as_ref().unwrap().database_type.as_deref(), Some(kind));
        }
    }
}

macro_rules! db_contract {
    ($module:ident, $bin:expr) => {
        mod $module {
            const BIN: &str = $bin;

            #[tokio::test]
            async fn sqlite_in_memory_by_default() {
                super::sqlite_in_memory_by_default(BIN).await
            }
            #[tokio::test]
            async fn a_database_that_is_down_answers_502_with_a_fault() {
                super::a_database_that_is_down_answers_502_with_a_fault(BIN).await
            }
            #[tokio::test]
            async fn real_servers_when_running() {
                super::real_servers_when_running(BIN).await
            }
        }
    };
}

db_contract!(axum_service, env!("CARGO_BIN_EXE_axum-service"));
db_contract!(actix_service, env!("CARGO_BIN_EXE_actix-service"));
