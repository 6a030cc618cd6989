//! The origin keeps a connection usable after answering a request whose body it did not need:
//! the edge pools its connections to the origin, and a connection the origin closed without
//! saying so costs the edge's next request on it (a 502, "network connection lost"). Spoken
//! over one raw TCP connection, so that a closed one cannot hide behind a client's retry.
//! The edge, for its part, keeps an idle connection longer than the tests' clients do.

use oxvault_tests::TestStack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body): its status line and
/// headers, lower-cased. `None` when the server closed the connection instead.
async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    Some((status, head))
}

/// The `host:port` of `base` (an `http://` URL) and a raw TCP connection to it.
async fn connect(base: &str) -> (String, TcpStream) {
    let address = base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&address)
        .await
        .unwrap_or_else(|err| panic!("connect to {address}: {err}"));
    (address, stream)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_before_its_body_is_read_leaves_the_connection_usable() {
    let stack = TestStack::shared().await;
    let (address, mut stream) = connect(stack.origin_base()).await;

    // Refused for its token before the JSON body is parsed. The body follows the headers a
    // moment later, as a client streaming it would send it: an origin that answers before
    // reading it cannot reuse the connection.
    let body = r#"{"name": "never read"}"#;
    let headers = format!(
        "POST /v1/vaults HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer not-a-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(headers.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The origin may have hung up already; the answer below tells.
    let _ = stream.write_all(body.as_bytes()).await;
    let (status, head) = read_response(&mut stream)
        .await
        .expect("an answer to the refused request");
    assert!(status.starts_with("http/1.1 401"), "{status}");
    assert!(!head.contains("connection: close"), "{head}");

    // The same connection answers the next request.
    let next = format!("GET /v1/health HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(next.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut stream)
        .await
        .expect("the origin closed the connection after the refusal");
    assert!(status.starts_with("http/1.1 200"), "{status}");
}

/// The tests' clients drop an idle connection before the edge closes it
/// (`oxvault_tests::POOL_IDLE_TIMEOUT`, where the reason is written): a connection left idle a
/// second longer than they keep one is still open at the edge. Were the edge's limit ever under
/// theirs, their requests could again go out on a connection the edge is closing, and be lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_edge_keeps_an_idle_connection_longer_than_the_tests_clients_do() {
    let stack = TestStack::shared().await;
    let (address, mut stream) = connect(stack.edge_base()).await;
    // Outside /v1: answered by the edge alone, with no rate limit to count it.
    let request = format!("GET /keep-alive-probe HTTP/1.1\r\nHost: {address}\r\n\r\n");

    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut stream).await.expect("a first answer");
    assert!(status.starts_with("http/1.1 404"), "{status}");

    tokio::time::sleep(oxvault_tests::POOL_IDLE_TIMEOUT + std::time::Duration::from_secs(1)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut stream)
        .await
        .expect("the edge closed a connection the tests' clients would still have reused");
    assert!(status.starts_with("http/1.1 404"), "{status}");
}
