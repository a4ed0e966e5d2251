//! What operators rely on: metrics, readiness and graceful shutdown, against
//! relays running as processes (the metrics recorder is process-wide).

use bson::doc;
use futures::TryStreamExt;
use serde_json::json;

use crate::client::Conversation;
use crate::db::{DbOptions, DbServer};
use crate::helpers::{http_get, mongo, spawn_app, unique_database, wait_for_http, RECOVER_FAST};

pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let relay = spawn_app().process().await;
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    alice.post("r", "c1", json!("hello")).await;
    alice.message("r", 1).await;
    alice.send(json!({"type": "nonsense"})).await;
    alice.error().await;
    let refused = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws?user=", relay.port)).await;
    assert!(refused.is_err());
    let response = http_get(relay.port, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200") && response.contains("text/plain; version=0.0.4"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    for name in [
        "roomcast_connections_open",
        "roomcast_rooms_joined",
        "roomcast_frames_in_total",
        "roomcast_frames_out_total",
        "roomcast_fanout_frames_total",
        "roomcast_bytes_out_total",
        "roomcast_sends_total",
        "roomcast_write_seconds",
        "roomcast_send_group_size",
        "roomcast_relay_overhead_seconds",
        "roomcast_route_events_total",
        "roomcast_route_lag_seconds",
        "roomcast_auth_failures_total",
        "roomcast_http_connections",
    ] {
        assert!(body.contains(&format!("# TYPE {name}")), "{name} missing from\n{body}");
    }
    assert_eq!(metric(body, "roomcast_connections_open"), Some(1.0));
    assert_eq!(metric(body, "roomcast_rooms_joined"), Some(1.0));
    assert_eq!(metric(body, r#"roomcast_sends_total{result="accepted"}"#), Some(1.0));
    assert_eq!(
        metric(body, r#"roomcast_frames_in_total{type="unknown"}"#)
            .or(metric(body, r#"roomcast_frames_in_total{type="invalid"}"#)),
        Some(1.0)
    );
    assert_eq!(metric(body, r#"roomcast_frames_out_total{type="message"}"#), Some(1.0));
    assert_eq!(metric(body, r#"roomcast_route_events_total{route="messages"}"#), Some(1.0));
    assert_eq!(metric(body, "roomcast_write_seconds_count"), Some(1.0));
    assert_eq!(metric(body, "roomcast_send_group_size_sum"), Some(1.0));
    // One live frame (the message) was written; the error frame after it is
    // not a change event. Its record precedes the error frame's write.
    assert_eq!(metric(body, "roomcast_relay_overhead_seconds_count"), Some(1.0));
    assert!(body.contains(r#"roomcast_relay_overhead_seconds_bucket{le="0.001"}"#), "{body}");
    assert_eq!(metric(body, r#"roomcast_auth_failures_total{reason="invalid_user"}"#), Some(1.0));
}

#[tokio::test]
async fn readiness_names_the_failed_check_and_recovers() {
    let mut db = DbServer::start(DbOptions::default());
    let relay = spawn_app().at(&db.uri).set_all(&RECOVER_FAST).process().await;
    let ready = http_get(relay.port, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200") && ready.contains(r#""state":"open""#), "{ready}");
    db.stop(libc::SIGTERM);
    wait_for_http(relay.port, "/readyz", r#""failed":"mongodb""#).await;
    assert!(http_get(relay.port, "/readyz").await.starts_with("HTTP/1.1 503"));
    assert!(http_get(relay.port, "/healthz").await.starts_with("HTTP/1.1 200"), "alive all the same");
    db.restart();
    wait_for_http(relay.port, "/readyz", r#""status":"ready""#).await;
}

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_after_acking_what_was_in_flight() {
    let database = unique_database();
    let mut relay = spawn_app().database(&database).process().await;
    let mut alice = relay.client("alice").await;
    let mut bob = relay.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let sends = 60;
    for i in 0..sends {
        alice.send(json!({"type": "send", "room": "r", "client_id": format!("c{i}"), "body": i})).await;
    }
    // The signal lands while the sends are being committed.
    alice.wait_for(|f| f["type"] == "ack").await;
    // A client trickling in an HTTP request must not hold the exit up.
    let mut trickling = tokio::net::TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut trickling, b"GET /healthz HTTP/1.1\r\nHost: loc").await.unwrap();
    let exited = tokio::time::timeout(std::time::Duration::from_secs(30), relay.terminate()).await;
    let (code, took) = exited.expect("the relay exits despite an unfinished HTTP request");
    assert_eq!(code, Some(0), "exits cleanly");
    assert!(took < std::time::Duration::from_secs(10), "within server.shutdown_grace: {took:?}");
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.closed().await, (1001, "going away".to_string()));
    }
    // Both directions: every ack names a committed message, and every
    // committed send was acked before the close.
    let stored: Vec<bson::Document> = mongo(&database)
        .await
        .collection::<bson::Document>("messages")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let stored: std::collections::BTreeMap<String, i64> =
        stored.iter().map(|d| (d.get_str("client_id").unwrap().to_string(), d.get_i64("seq").unwrap())).collect();
    let acked: std::collections::BTreeMap<String, i64> = alice
        .seen
        .iter()
        .filter(|f| f["type"] == "ack")
        .map(|f| (f["client_id"].as_str().unwrap().to_string(), f["seq"].as_i64().unwrap()))
        .collect();
    assert!(!acked.is_empty());
    assert_eq!(acked, stored, "acked and stored are the same sends, at the same seqs");
    eprintln!("graceful shutdown: exited in {took:?} with {} of {sends} sends stored, each acked", stored.len());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", relay.port)).await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn metrics_can_have_a_port_of_their_own_away_from_the_public_one() {
    let app = spawn_app().with(|s| s.server.metrics_port = Some(0)).await;
    let metrics_port = app.metrics_port.expect("a metrics port");
    let public = http_get(app.port, "/metrics").await;
    assert!(public.starts_with("HTTP/1.1 404"), "{public}");
    let private = http_get(metrics_port, "/metrics").await;
    assert!(private.starts_with("HTTP/1.1 200") && private.contains("roomcast_"), "{private}");
    let other = http_get(metrics_port, "/healthz").await;
    assert!(other.starts_with("HTTP/1.1 404"), "only /metrics there: {other}");
}

#[tokio::test]
async fn closes_are_counted_by_code_and_streams_and_memory_are_exported_from_the_start() {
    let relay =
        spawn_app().set_all(&[("server.ping_interval", "100ms"), ("server.idle_timeout", "300ms")]).process().await;
    let body = relay.metrics().await;
    for code in ["1001", "4000", "4001", "4008", "client"] {
        assert_eq!(metric(&body, &format!(r#"roomcast_closes_total{{code="{code}"}}"#)), Some(0.0), "{code}");
    }
    assert_eq!(metric(&body, r#"roomcast_route_open{route="messages"}"#), Some(1.0), "{body}");
    assert!(metric(&body, "roomcast_resident_memory_bytes").is_some_and(|bytes| bytes > 1e6), "{body}");
    // A client that reads nothing answers no ping, and is closed with 4000;
    // one that leaves is the client's close.
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let url = format!("ws://127.0.0.1:{}/ws?user=quiet", relay.port);
    let (_silent, _) = tokio_tungstenite::client_async(url, socket).await.unwrap();
    let mut leaving = relay.client("leaving").await;
    leaving.ping().await;
    drop(leaving);
    let scraped = crate::helpers::wait_for_total(&[&relay], r#"roomcast_closes_total{code="4000"}"#, 1.0).await;
    crate::helpers::wait_for_total(&[&relay], r#"roomcast_closes_total{code="client"}"#, 1.0).await;
    assert_eq!(metric(&scraped[0], r#"roomcast_closes_total{code="4008"}"#), Some(0.0));
}
