use std::process::Command;

fn start_with(env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("ROOMCAST_ENV");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run roomcast");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).trim().to_string())
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_key() {
    let cases = [
        (vec![("ROOMCAST__SERVER__PORT", "eighty")], "server.port"),
        (vec![("ROOMCAST__SERVER__PROT", "80")], "prot"),
        (vec![("ROOMCAST__MONGO__URI", "postgres://x")], "mongo.uri"),
        (vec![("ROOMCAST__LIMITS__MAX_BODY_BYTES", "0")], "limits.max_body_bytes"),
        (vec![("ROOMCAST__LIMITS__HTTP_CONNECTIONS_PER_IP", "0")], "limits.http_connections_per_ip"),
        (vec![("ROOMCAST__SERVER__HEADER_TIMEOUT", "0s")], "server.header_timeout"),
        (vec![("ROOMCAST__SERVER__KEEP_ALIVE_TIMEOUT", "0s")], "server.keep_alive_timeout"),
        (vec![("ROOMCAST__AUTH__MODE", "magic")], "auth.mode"),
        (vec![("ROOMCAST_ENV", "production"), ("ROOMCAST__AUTH__MODE", "none")], "auth.mode"),
        (vec![("ROOMCAST_ENV", "production")], "auth.jwt.issuer"),
        (
            vec![("ROOMCAST_ENV", "production"), ("ROOMCAST__AUTH__JWT__ISSUER", "https://id.example")],
            "auth.jwt.audience",
        ),
        (
            vec![
                ("ROOMCAST_ENV", "production"),
                ("ROOMCAST__AUTH__JWT__ISSUER", "https://id.example"),
                ("ROOMCAST__AUTH__JWT__AUDIENCE", "chat"),
            ],
            "auth.jwt.key_file",
        ),
        (
            vec![
                ("ROOMCAST_ENV", "production"),
                ("ROOMCAST__AUTH__JWT__ALLOW_ANY_ISSUER", "true"),
                ("ROOMCAST__AUTH__JWT__ALLOW_ANY_AUDIENCE", "true"),
            ],
            "auth.jwt.key_file",
        ),
        (vec![("ROOMCAST__LIMITS__MAX_REPLAY_BYTES", "8388608")], "limits.max_replay_bytes"),
        (vec![("ROOMCAST__LIMITS__MAX_DOCUMENT_BYTES", "0")], "limits.max_document_bytes"),
        // One user's share must hold what one connection may borrow, and fit the pool.
        (vec![("ROOMCAST__LIMITS__USER_POOL_BYTES", "1048576")], "limits.user_pool_bytes"),
        (vec![("ROOMCAST__LIMITS__USER_POOL_BYTES", "134217728")], "limits.user_pool_bytes"),
        (vec![("ROOMCAST__SERVER__WRITE_TIMEOUT", "0s")], "server.write_timeout"),
        (vec![("ROOMCAST__MONGO__QUERY_TIMEOUT", "0s")], "mongo.query_timeout"),
        (vec![("ROOMCAST__MONGO__MAX_POOL_SIZE", "0")], "mongo.max_pool_size"),
        (vec![("ROOMCAST__AUTH__MODE", "jwt"), ("ROOMCAST__AUTH__JWT__ALGORITHMS", "HS256")], "auth.jwt.secret_file"),
        (vec![("ROOMCAST_ENV", "staging")], "ROOMCAST_ENV"),
        // A forwarding header nobody trusted appends is the client's to write.
        (vec![("ROOMCAST__SERVER__CLIENT_IP_HEADER", "x-forwarded-for")], "server.trusted_proxies"),
        (
            vec![("ROOMCAST__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.0/33")],
            "server.trusted_proxies: `192.0.2.0/33`",
        ),
    ];
    for (env, key) in cases {
        let (code, stderr) = start_with(&env);
        assert_eq!(code, 2, "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.starts_with("roomcast: invalid configuration: "), "{stderr}");
        assert!(stderr.contains(key), "{env:?} should name {key}: {stderr}");
    }
}

#[test]
fn a_user_route_cannot_relay_deletes() {
    let config = std::env::temp_dir().join(format!("roomcast-config-{}", std::process::id()));
    std::fs::create_dir_all(&config).unwrap();
    for file in ["base.yaml", "local.yaml"] {
        let text = std::fs::read_to_string(crate::project_dir().join("config").join(file)).unwrap();
        let text = text.replace(
            "    key_type: string\n    operations: [insert]",
            "    key_type: string\n    operations: [insert, delete]",
        );
        std::fs::write(config.join(file), text).unwrap();
    }
    let (code, stderr) = start_with(&[("ROOMCAST_CONFIG_DIR", config.to_str().unwrap())]);
    std::fs::remove_dir_all(&config).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("routes[1].operations") && stderr.contains("room route only"), "{stderr}");
}
