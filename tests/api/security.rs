//! Authentication and authorization: every way a token can be wrong, every
//! place it can come from, and each room policy, against a live relay.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::doc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roomcast::settings::{AuthMode, JwtAlgorithm, RoomPolicy, Settings};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{spawn_app, TestApp};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "iss": "roomcast-tests", "aud": "chat"})
}

pub fn sign(alg: Algorithm, claims: &Value, kid: Option<&str>) -> String {
    let key = match alg {
        Algorithm::HS256 => {
            let secret = std::fs::read(fixture("hs256-secret")).unwrap();
            EncodingKey::from_secret(secret.trim_ascii())
        }
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap(),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

pub fn jwt(settings: &mut Settings, algorithm: JwtAlgorithm) {
    settings.auth.mode = AuthMode::Jwt;
    settings.auth.jwt.algorithms = vec![algorithm];
    settings.auth.jwt.issuer = Some("roomcast-tests".into());
    settings.auth.jwt.audience = Some("chat".into());
    match algorithm {
        JwtAlgorithm::HS256 => settings.auth.jwt.secret_file = Some(fixture("hs256-secret")),
        JwtAlgorithm::RS256 => settings.auth.jwt.key_file = Some(fixture("rsa-public.pem")),
        JwtAlgorithm::ES256 => settings.auth.jwt.key_file = Some(fixture("ec-public.pem")),
    }
}

/// A handshake with the given query and headers: the client, or the refusal's status and body.
async fn handshake(
    app: &TestApp,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, Option<String>), (u16, Value)> {
    let mut request = format!("ws://127.0.0.1:{}/ws{query}", app.port).into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_string());
            Ok((Client::from_socket(socket), protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = serde_json::from_slice(response.body().as_deref().unwrap_or(b"null")).unwrap();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("handshake failed oddly: {other}"),
    }
}

async fn refused(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match handshake(app, query, headers).await {
        Ok(_) => panic!("{query} {headers:?} was accepted"),
        Err((status, body)) => (status, body["message"].as_str().unwrap_or_default().to_string()),
    }
}

/// The user the relay believes this client is: the author of what it sends.
async fn identity_of(client: &mut Client) -> String {
    client.join("whoami").await;
    client.post("whoami", &format!("c{}", fastrand::u64(..)), json!("hi")).await;
    let seq = client.seen.iter().rev().find(|f| f["type"] == "ack").unwrap()["seq"].as_i64().unwrap();
    client.message("whoami", seq).await["author"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_before_the_upgrade() {
    let app = spawn_app().with(|s| jwt(s, JwtAlgorithm::HS256)).await;
    let bearer = |token: &str| format!("Bearer {token}");
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("alice");
    early["nbf"] = json!(now() + 3600);
    let mut audience = claims("alice");
    audience["aud"] = json!("billing");
    let mut issuer = claims("alice");
    issuer["iss"] = json!("someone-else");
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    let forged = {
        let key = EncodingKey::from_secret(b"not-the-secret-not-the-secret-not-the-secret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims("alice"), &key).unwrap()
    };
    let other_algorithm = sign(Algorithm::RS256, &claims("alice"), None);
    let cases: Vec<(String, &str)> = vec![
        (sign(Algorithm::HS256, &expired, None), "expired"),
        (sign(Algorithm::HS256, &early, None), "not valid yet"),
        (sign(Algorithm::HS256, &audience, None), "audience"),
        (sign(Algorithm::HS256, &issuer, None), "issuer"),
        (sign(Algorithm::HS256, &no_sub, None), "invalid"),
        (forged, "invalid"),
        (other_algorithm, "invalid"),
        ("not.a.token".to_string(), "invalid"),
    ];
    for (token, why) in cases {
        let (status, message) = refused(&app, "", &[("authorization", &bearer(&token))]).await;
        assert_eq!(status, 401, "{why}");
        assert!(message.contains(why), "{why}: {message}");
    }
    assert_eq!(refused(&app, "", &[]).await, (401, "a bearer token is required".to_string()));
    // In jwt mode the `user` parameter means nothing.
    assert_eq!(refused(&app, "?user=alice", &[]).await.0, 401);
}

#[tokio::test]
async fn a_token_is_accepted_from_the_header_the_subprotocol_or_the_query() {
    let app = spawn_app().with(|s| jwt(s, JwtAlgorithm::HS256)).await;
    let token = sign(Algorithm::HS256, &claims("alice|42"), None);
    let (mut by_header, _) = handshake(&app, "", &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
    assert_eq!(identity_of(&mut by_header).await, "alice|42", "the user id is the token's sub");
    let protocols = format!("roomcast.v1, bearer.{token}");
    let (mut by_protocol, answered) = handshake(&app, "", &[("sec-websocket-protocol", &protocols)]).await.unwrap();
    assert_eq!(answered.as_deref(), Some("roomcast.v1"), "browsers need the subprotocol answered");
    assert_eq!(identity_of(&mut by_protocol).await, "alice|42");
    let (mut by_query, _) = handshake(&app, &format!("?token={token}"), &[]).await.unwrap();
    assert_eq!(identity_of(&mut by_query).await, "alice|42");

    let strict = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.query_token = false;
        })
        .await;
    assert_eq!(refused(&strict, &format!("?token={token}"), &[]).await.0, 401, "query tokens can be switched off");
}

#[tokio::test]
async fn rs256_es256_and_jwks_keys_verify_their_tokens() {
    for algorithm in [JwtAlgorithm::RS256, JwtAlgorithm::ES256] {
        let app = spawn_app().with(move |s| jwt(s, algorithm)).await;
        let alg = if algorithm == JwtAlgorithm::RS256 { Algorithm::RS256 } else { Algorithm::ES256 };
        let token = sign(alg, &claims("bob"), None);
        let (mut client, _) = handshake(&app, "", &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
        assert_eq!(identity_of(&mut client).await, "bob");
        let hs = sign(Algorithm::HS256, &claims("bob"), None);
        assert_eq!(refused(&app, "", &[("authorization", &format!("Bearer {hs}"))]).await.0, 401);
    }
    let app = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::RS256);
            s.auth.jwt.key_file = None;
            s.auth.jwt.jwks_file = Some(fixture("jwks.json"));
        })
        .await;
    let token = sign(Algorithm::RS256, &claims("carol"), Some("k1"));
    let (mut client, _) = handshake(&app, "", &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
    assert_eq!(identity_of(&mut client).await, "carol");
    let unknown_kid = sign(Algorithm::RS256, &claims("carol"), Some("k9"));
    assert_eq!(refused(&app, "", &[("authorization", &format!("Bearer {unknown_kid}"))]).await.0, 401);
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_the_connection_with_4001() {
    let app = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.jwt.leeway = Duration::ZERO;
        })
        .await;
    let mut soon = claims("dave");
    soon["exp"] = json!(now() + 2);
    let token = sign(Algorithm::HS256, &soon, None);
    let (mut client, _) = handshake(&app, "", &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
    client.ping().await;
    assert_eq!(client.closed().await, (4001, "token expired".to_string()));
}

#[tokio::test]
async fn the_claim_policy_admits_only_the_rooms_the_token_lists() {
    let app = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.room_policy = RoomPolicy::Claim;
        })
        .await;
    let mut with_rooms = claims("erin");
    with_rooms["rooms"] = json!(["lobby", "team:*"]);
    let token = sign(Algorithm::HS256, &with_rooms, None);
    let (mut erin, _) = handshake(&app, "", &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
    erin.join("lobby").await;
    erin.join("team:42").await;
    for denied in ["secret", "team", "lobby2"] {
        erin.send(json!({"type": "join", "room": denied})).await;
        let error = erin.error().await;
        assert_eq!((error["code"].as_str(), error["ref"]["room"].as_str()), (Some("forbidden"), Some(denied)));
    }
    erin.send(json!({"type": "send", "room": "secret", "client_id": "x", "body": 1})).await;
    assert_eq!(erin.error().await["code"], "not_joined", "a send needs the same right as a join");
    assert_eq!(app.messages().count_documents(doc! {"room": "secret"}).await.unwrap(), 0);
}

#[tokio::test]
async fn the_membership_policy_follows_room_members_and_revokes_at_once() {
    let app = spawn_app().with(|s| s.auth.room_policy = RoomPolicy::Membership).await;
    let members = app.database.collection::<bson::Document>("room_members");
    let membership = members.insert_one(doc! {"room": "club", "user": "alice"}).await.unwrap();
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("club").await;
    bob.send(json!({"type": "join", "room": "club"})).await;
    assert_eq!(bob.error().await["code"], "forbidden");
    members.insert_one(doc! {"room": "club", "user": "bob"}).await.unwrap();
    bob.join("club").await;
    alice.post("club", "a1", json!("before")).await;
    bob.message("club", 1).await;

    members.delete_one(doc! {"_id": membership.inserted_id}).await.unwrap();
    let left = alice.wait_for(|f| f["type"] == "left").await;
    assert_eq!(left, json!({"type": "left", "room": "club", "reason": "revoked"}));
    alice.send(json!({"type": "send", "room": "club", "client_id": "a2", "body": "after"})).await;
    assert_eq!(alice.error().await["code"], "not_joined");
    bob.post("club", "b1", json!("for members only")).await;
    bob.message("club", 2).await;
    alice.ping().await;
    assert_eq!(alice.seqs("club"), [1], "nothing of the room after the revocation");
    alice.send(json!({"type": "join", "room": "club"})).await;
    assert_eq!(alice.error().await["code"], "forbidden");
}

#[tokio::test]
async fn a_revocation_that_lands_while_a_join_reads_its_replay_is_not_undone() {
    let app = spawn_app().with(|s| s.auth.room_policy = RoomPolicy::Membership).await;
    // A room per attempt, each with a long history, so a join's replay takes a while to read.
    let attempts = 40_u64;
    let history: Vec<bson::Document> = (0..attempts)
        .flat_map(|attempt| {
            (1..=300_i64).map(move |seq| {
                let room = format!("club{attempt}");
                doc! {"room": room, "seq": seq, "author": "bot", "body": "x".repeat(500), "sent_at": bson::DateTime::now()}
            })
        })
        .collect();
    app.messages().insert_many(history).await.unwrap();
    let members = app.database.collection::<bson::Document>("room_members");
    let mut alice = app.client("alice").await;
    let mut raced = 0;
    // The removal is committed at a growing delay after the join was sent,
    // so some attempts land after the join's last membership check, while
    // its replay is read.
    for attempt in 0..attempts {
        let room = format!("club{attempt}");
        members.insert_one(doc! {"room": &room, "user": "alice"}).await.unwrap();
        alice.send(json!({"type": "join", "room": &room, "since": 0})).await;
        tokio::time::sleep(Duration::from_millis(attempt / 2)).await;
        members.delete_one(doc! {"room": &room, "user": "alice"}).await.unwrap();
        // Whatever this join came to (joined then left, left alone, or forbidden),
        // it ends with the room left or refused.
        let ended = |f: &Value| f["room"] == room.as_str() || f["ref"]["room"] == room.as_str();
        alice.wait_for(|f| ended(f) && (f["type"] == "left" || f["code"] == "forbidden")).await;
        alice.ping().await;
        let frames: Vec<&Value> = alice.seen.iter().filter(|f| f["room"] == room.as_str()).collect();
        let left = frames.iter().position(|f| f["type"] == "left");
        let joined = frames.iter().position(|f| f["type"] == "joined");
        if let Some(left) = left {
            assert!(joined.is_none_or(|joined| joined < left), "`joined` after `left` in {room}: {frames:?}");
            raced += usize::from(joined.is_none());
        }
        // Never in the room afterwards: a send is refused.
        let probe = format!("x{attempt}");
        alice.send(json!({"type": "send", "room": &room, "client_id": probe, "body": 1})).await;
        let refused = alice.wait_for(|f| f["type"] == "error" && f["ref"]["client_id"] == probe.as_str()).await;
        assert_eq!(refused["code"], "not_joined");
    }
    eprintln!("revocation race: {raced} of {attempts} removals landed while the join's replay was read");
    assert!(raced > 0, "no attempt reached the window between the membership check and the replay");
}
