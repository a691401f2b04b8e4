//! An instrumented reqwest call made inside an actix handler attaches to the actix segment,
//! and the service it calls continues the same trace.

mod common;

use actix_web::{web, HttpResponse};
use common::{client, collector, response_root, TestServer};
use xray_actix::XRay;
use xray_reqwest::XRayMiddleware;

#[tokio::test]
async fn reqwest_call_inside_a_handler_is_a_subsegment_of_the_actix_segment() {
    let (c, r) = collector();
    let downstream = TestServer::start(XRay::new("inventory").with_recorder(r.clone()), |cfg| {
        cfg.route(
            "/stock",
            web::get().to(|| async { HttpResponse::Ok().body("12") }),
        );
    });
    let stock_url = downstream.url("/stock");
    let upstream = TestServer::start(XRay::new("shop").with_recorder(r), move |cfg| {
        let stock_url = stock_url.clone();
        cfg.route(
            "/buy",
            web::get().to(move || {
                let stock_url = stock_url.clone();
                async move {
                    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                        .with(XRayMiddleware::new())
                        .build();
                    let res = http.get(&stock_url).send().await.unwrap();
                    HttpResponse::Ok().body(res.text().await.unwrap())
                }
            }),
        );
    });

    let res = client().get(upstream.url("/buy")).send().await.unwrap();
    let root = response_root(&res);
    assert_eq!(res.text().await.unwrap(), "12");

    let docs = c.wait_for_documents(2, common::WAIT);
    assert_eq!(docs.len(), 2, "one segment per service: {docs:?}");
    let shop = docs
        .iter()
        .find(|d| d.name == "shop")
        .expect("the upstream segment arrived");
    assert_eq!(shop.trace_id.unwrap().to_string(), root);
    assert_eq!(shop.name, "shop");
    assert_eq!(shop.subsegments.len(), 1, "{docs:?}");
    let call = &shop.subsegments[0];
    assert_eq!(call.name, "127.0.0.1");
    assert_eq!(call.namespace.as_deref(), Some("remote"));
    let request = call.http.request.as_ref().unwrap();
    assert_eq!(
        request.url.as_deref(),
        Some(downstream.url("/stock").as_str())
    );
    assert!(request.traced);
    assert_eq!(call.http.response.as_ref().unwrap().status, Some(200));

    let inventory = docs
        .iter()
        .find(|d| d.name == "inventory")
        .expect("the downstream segment arrived");
    assert_eq!(
        inventory.trace_id, shop.trace_id,
        "one trace across both services"
    );
    assert_eq!(
        inventory.parent_id,
        Some(call.id),
        "its parent is the call's subsegment"
    );
}
