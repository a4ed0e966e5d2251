//! Feeds arbitrary bytes to the frame decoder, and every decoded body to the
//! BSON conversion, as a client could. Neither may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use roomcast::protocol::{body_to_bson, decode, BodyLimits, ClientFrame};
use roomcast::settings::Settings;

/// The body limits of the project's `config/base.yaml`.
fn limits() -> BodyLimits {
    static LIMITS: OnceLock<BodyLimits> = OnceLock::new();
    *LIMITS.get_or_init(|| {
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let (settings, _) = Settings::load(&config).expect("the project's configuration loads");
        BodyLimits { max_bytes: settings.limits.max_body_bytes, max_depth: settings.limits.max_body_depth }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ClientFrame::Send { body, .. } | ClientFrame::Edit { body, .. }) = decode(text) {
        let _ = body_to_bson(&body, limits());
    }
});
