//! docs/protocol.md's input table has a row for every client frame type and
//! every HTTP endpoint, and each row names tests that exist: the next frame
//! type or endpoint cannot land without answering the table's questions.

use roomcast::http::routes::ENDPOINTS;
use roomcast::protocol::CLIENT_FRAME_TYPES;

use crate::helpers::spawn_app;

/// The rows of the input table: each row's first cell and its last.
fn rows() -> Vec<(String, String)> {
    let protocol = std::fs::read_to_string(crate::project_dir().join("docs/protocol.md")).unwrap();
    let section = protocol.split("\n## Input table\n").nth(1).expect("an `## Input table` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`').to_string(), cells.last().unwrap().to_string())
        })
        .collect()
}

/// Every `fn` of the integration tests, as `module::name`.
fn test_names() -> Vec<String> {
    let dir = crate::project_dir().join("tests/api");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        for line in source.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("async fn ") {
                names.push(format!("{module}::{}", rest.split('(').next().unwrap()));
            }
        }
    }
    names
}

#[test]
fn every_frame_type_and_endpoint_has_its_row_in_the_input_table() {
    let rows = rows();
    let named: Vec<&str> = rows.iter().map(|(input, _)| input.as_str()).collect();
    for input in CLIENT_FRAME_TYPES.iter().chain(ENDPOINTS.iter()) {
        assert!(named.contains(input), "`{input}` has no row in docs/protocol.md's input table");
    }
    for input in &named {
        assert!(
            CLIENT_FRAME_TYPES.contains(input) || ENDPOINTS.contains(input),
            "the input table's `{input}` is neither a frame type nor an endpoint"
        );
    }
    let tests = test_names();
    for (input, attacked_by) in &rows {
        let cited: Vec<&str> = attacked_by.split('`').skip(1).step_by(2).filter(|name| name.contains("::")).collect();
        assert!(!cited.is_empty(), "the row of `{input}` names no test");
        for test in cited {
            assert!(tests.iter().any(|t| t == test), "the row of `{input}` names `{test}`, which does not exist");
        }
    }
}

#[tokio::test]
async fn every_listed_endpoint_is_served() {
    let app = spawn_app().with(|s| s.server.static_dir = Some(crate::project_dir().join("web"))).await;
    for endpoint in ENDPOINTS {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let path = path.replace("{room}", "r").replace("{file}", "index.html").replace("{session}", "none");
        let head = answer_head(app.port, method, &format!("{path}?user=alice")).await;
        let status = head.split(' ').nth(1).unwrap_or_default();
        // `/ws` without an upgrade is 426, and a POST to a session that
        // does not exist says so: served, and refused as such.
        let served = status != "404" || head.contains("no_session");
        assert!(served && !status.is_empty(), "{endpoint} is not served: {head}");
    }
}

/// The head of the answer to `METHOD path` (and what came with it), read
/// only that far: `/sse` answers a stream that does not end.
async fn answer_head(port: u16, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(crate::client::PATIENCE, stream.read(&mut buffer)).await.unwrap().unwrap();
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&head).to_string()
}
