//! Feeds arbitrary bytes to the frame decoder, and every decoded body to the
//! BSON conversion, as a client could. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast::gateway::frames::{body_to_bson, decode, ClientFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = serde_json::from_value(serde_json::json!({
        "max_frame_bytes": 131072, "max_body_bytes": 65536, "max_body_depth": 32, "max_replay": 1000,
        "send_queue_frames": 1024, "send_queue_bytes": 4194304, "max_rooms_per_connection": 100,
        "max_connections_per_user": 20, "sends_per_second": 20, "send_burst": 40, "joins_per_second": 10,
        "join_burst": 50, "handshakes_per_second_per_ip": 20, "handshake_burst_per_ip": 50
    }))
    .expect("limits deserialize");
    if let Ok(ClientFrame::Send { body, .. } | ClientFrame::Edit { body, .. }) = decode(text) {
        let _ = body_to_bson(&body, &limits);
    }
});
