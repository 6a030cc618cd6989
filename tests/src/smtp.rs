//! A real SMTP server for the mail tests: the origin's delivery loop speaks SMTP to it over
//! TCP exactly as it would to a relay.
//!
//! It speaks the part of RFC 5321 a submission client needs (EHLO/HELO, MAIL FROM, RCPT TO,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT), with no authentication and no TLS, on
//! 127.0.0.1. It records every accepted message (envelope and raw data) for the test to await
//! with [`SmtpListener::wait_for_message`]. [`SmtpSettings::refuse_first`] makes it answer
//! temporary failures (421 at the greeting, or 451 after the data) to the first transactions,
//! so tests can watch the origin retry. Dropping the listener closes it and every connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest message accepted; larger ones get 552 (no test sends anything near it).
const MAX_DATA: usize = 1 << 20;

/// Which temporary failure a refusing listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempFailure {
    /// `421` as the greeting, then the connection closes: the server is not taking mail.
    Greeting421,
    /// `451` after the message data has been sent: the client must not count it delivered.
    Data451,
}

/// How a listener is started.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// How many transactions (connections, for [`TempFailure::Greeting421`]) are refused
    /// before messages are accepted.
    pub refuse_first: usize,
    pub failure: TempFailure,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            refuse_first: 0,
            failure: TempFailure::Data451,
        }
    }
}

/// A message the listener accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as transferred (headers and body, CRLF line ends, dots unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The header block, continuation lines unfolded, one `(name, value)` per header.
    pub fn headers(&self) -> Vec<(String, String)> {
        let block = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in block.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        headers
    }

    /// The value of the (first) header `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(found, _)| found.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The body, decoded from its `Content-Transfer-Encoding` (7bit, 8bit, quoted-printable,
    /// base64), with CRLF turned into LF.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(raw),
            "base64" => {
                let compact: String = raw.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("a base64 body");
                String::from_utf8(bytes).expect("a UTF-8 body")
            }
            _ => raw.to_owned(),
        };
        decoded.replace("\r\n", "\n")
    }
}

/// Quoted-printable (RFC 2045 6.7): `=XX` is a byte, `=` at a line end is a soft break.
fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'=' {
            bytes.push(byte);
            rest = tail;
        } else if tail.starts_with(b"\r\n") {
            rest = &tail[2..];
        } else if tail.starts_with(b"\n") {
            rest = &tail[1..];
        } else if let Some(value) = tail
            .get(..2)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            bytes.push(value);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).expect("a UTF-8 quoted-printable body")
}

/// What the connections share.
#[derive(Debug)]
struct State {
    accepted: Vec<ReceivedMail>,
    /// How many of `accepted` `wait_for_message` has handed out.
    taken: usize,
    refusals_left: usize,
    refused: usize,
    failure: TempFailure,
}

impl State {
    /// Whether this transaction is to be refused with `failure` (counting it if so).
    fn refuse(&mut self, failure: TempFailure) -> bool {
        if self.failure != failure || self.refusals_left == 0 {
            return false;
        }
        self.refusals_left -= 1;
        self.refused += 1;
        true
    }
}

/// A port on 127.0.0.1 held by a bound socket that does not listen yet. Connections to it are
/// refused, as to a port nothing holds, and nothing else can take it meanwhile: a port picked
/// free and let go was taken once by another test's outgoing connection (ports are handed out
/// from the same range) before the listener could bind it.
#[derive(Debug)]
pub struct ReservedPort {
    socket: TcpSocket,
}

impl ReservedPort {
    pub fn new() -> Self {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("a free port on 127.0.0.1");
        Self { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("bound address").port()
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A running SMTP server on 127.0.0.1.
#[derive(Debug)]
pub struct SmtpListener {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl SmtpListener {
    /// A listener on a free port that accepts everything.
    pub async fn start() -> Self {
        Self::start_with(SmtpSettings::default()).await
    }

    /// A listener that accepts everything, on the port `reserved` has held since the test
    /// pointed the origin at it.
    pub async fn start_on(reserved: ReservedPort) -> Self {
        let listener = reserved
            .socket
            .listen(1024)
            .unwrap_or_else(|err| panic!("the test SMTP server cannot listen: {err}"));
        Self::serve(listener, SmtpSettings::default())
    }

    /// A listener on a free port as `settings` describe.
    pub async fn start_with(settings: SmtpSettings) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|err| panic!("the test SMTP server cannot bind: {err}"));
        Self::serve(listener, settings)
    }

    fn serve(listener: TcpListener, settings: SmtpSettings) -> Self {
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(Mutex::new(State {
            accepted: Vec::new(),
            taken: 0,
            refusals_left: settings.refuse_first,
            refused: 0,
            failure: settings.failure,
        }));
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            // Owned here, so aborting the server task drops (and aborts) every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(session(stream, Arc::clone(&shared)));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The origin's `OXVAULT_SMTP_URL` for this listener (plain SMTP, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The next accepted message not yet returned by this method; panics after `timeout`.
    pub async fn wait_for_message(&self, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut state = self.state.lock().expect("state");
                if let Some(mail) = state.accepted.get(state.taken).cloned() {
                    state.taken += 1;
                    return mail;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no message reached the test SMTP server within {timeout:?} ({} refused)",
                self.refused()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.state.lock().expect("state").accepted.clone()
    }

    /// How many transactions were refused with a temporary failure.
    pub fn refused(&self) -> usize {
        self.state.lock().expect("state").refused
    }
}

impl Drop for SmtpListener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Writes one reply.
async fn reply(writer: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.write_all(b"\r\n").await
}

/// Reads one line without its CRLF (or LF); `None` when the client hung up.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            Some(String::from_utf8_lossy(&line).into_owned())
        }
    }
}

/// The address inside `<...>` of a MAIL FROM / RCPT TO argument (parameters after it ignored).
fn path(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].trim().to_owned()
}

/// One client connection, greeting to QUIT (or hang-up).
async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read);
    if state
        .lock()
        .expect("state")
        .refuse(TempFailure::Greeting421)
    {
        reply(
            &mut writer,
            "421 4.3.2 oxvault-test not accepting mail now, try again later",
        )
        .await?;
        return writer.shutdown().await;
    }
    reply(&mut writer, "220 oxvault-test ESMTP ready").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await {
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let upper = line.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                reply(
                    &mut writer,
                    "250-oxvault-test\r\n250-8BITMIME\r\n250 SIZE 1048576",
                )
                .await?
            }
            "HELO" => reply(&mut writer, "250 oxvault-test").await?,
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                from = Some(path(&line["MAIL FROM:".len()..]));
                to.clear();
                reply(&mut writer, "250 2.1.0 OK").await?;
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                if from.is_none() {
                    reply(&mut writer, "503 5.5.1 MAIL first").await?;
                } else {
                    to.push(path(&line["RCPT TO:".len()..]));
                    reply(&mut writer, "250 2.1.5 OK").await?;
                }
            }
            "DATA" => {
                if to.is_empty() {
                    reply(&mut writer, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                reply(&mut writer, "354 end data with <CR><LF>.<CR><LF>").await?;
                let mut data = String::new();
                loop {
                    let Some(line) = read_line(&mut reader).await else {
                        return Ok(());
                    };
                    if line == "." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2): the client doubled a leading dot.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                let envelope_from = from.take().unwrap_or_default();
                let recipients = std::mem::take(&mut to);
                let answer = {
                    let mut state = state.lock().expect("state");
                    if data.len() > MAX_DATA {
                        "552 5.3.4 message too big"
                    } else if state.refuse(TempFailure::Data451) {
                        "451 4.3.0 temporary failure, try again later"
                    } else {
                        state.accepted.push(ReceivedMail {
                            from: envelope_from,
                            to: recipients,
                            data,
                        });
                        "250 2.0.0 OK queued"
                    }
                };
                reply(&mut writer, answer).await?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut writer, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut writer, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut writer, "221 2.0.0 bye").await?;
                return writer.shutdown().await;
            }
            _ => reply(&mut writer, "502 5.5.2 command not recognised").await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw SMTP client: sends a line, returns the full (possibly multi-line) reply.
    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(listener: &SmtpListener) -> (Self, String) {
            let stream = TcpStream::connect(listener.addr).await.unwrap();
            let (read, writer) = stream.into_split();
            let mut client = Self {
                reader: BufReader::new(read),
                writer,
            };
            let greeting = client.reply().await;
            (client, greeting)
        }

        async fn reply(&mut self) -> String {
            let mut text = String::new();
            loop {
                let line = read_line(&mut self.reader).await.unwrap_or_default();
                text.push_str(&line);
                text.push('\n');
                // "250-..." continues; "250 ..." (or a hang-up) ends the reply.
                if line.as_bytes().get(3) != Some(&b'-') {
                    return text;
                }
            }
        }

        async fn send(&mut self, line: &str) -> String {
            self.writer.write_all(line.as_bytes()).await.unwrap();
            self.writer.write_all(b"\r\n").await.unwrap();
            self.reply().await
        }

        /// MAIL, RCPT, DATA and the data lines (already dot-stuffed), up to the final reply.
        async fn transaction(&mut self, data_lines: &[&str]) -> String {
            assert!(
                self.send("MAIL FROM:<a@example.com>")
                    .await
                    .starts_with("250")
            );
            assert!(
                self.send("RCPT TO:<b@example.org>")
                    .await
                    .starts_with("250")
            );
            assert!(self.send("DATA").await.starts_with("354"));
            for line in data_lines {
                self.writer.write_all(line.as_bytes()).await.unwrap();
                self.writer.write_all(b"\r\n").await.unwrap();
            }
            self.send(".").await
        }
    }

    #[tokio::test]
    async fn a_reserved_port_refuses_connections_until_the_listener_starts_on_it() {
        let reserved = ReservedPort::new();
        let port = reserved.port();
        let refused = TcpStream::connect(("127.0.0.1", port)).await;
        assert!(
            refused.is_err(),
            "a connection to a reserved port was accepted"
        );
        let listener = SmtpListener::start_on(reserved).await;
        assert_eq!(listener.port(), port);
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut greeting = String::new();
        BufReader::new(stream)
            .read_line(&mut greeting)
            .await
            .unwrap();
        assert!(greeting.starts_with("220 "), "{greeting}");
    }

    #[tokio::test]
    async fn a_message_is_recorded_with_its_envelope_and_unstuffed_dots() {
        let listener = SmtpListener::start().await;
        let (mut client, greeting) = Client::connect(&listener).await;
        assert!(greeting.starts_with("220"), "{greeting}");
        let ehlo = client.send("EHLO client.example").await;
        assert!(
            ehlo.starts_with("250-") && ehlo.contains("\n250 "),
            "{ehlo}"
        );
        assert!(client.send("NOOP").await.starts_with("250"));
        // An abandoned transaction leaves nothing behind.
        assert!(
            client
                .send("MAIL FROM:<old@example.com>")
                .await
                .starts_with("250")
        );
        assert!(client.send("RSET").await.starts_with("250"));
        assert!(
            client
                .send("RCPT TO:<x@example.org>")
                .await
                .starts_with("503")
        );

        let done = client
            .transaction(&["Subject: hi", "", "..leading dot", "plain", ".."])
            .await;
        assert!(done.starts_with("250"), "{done}");
        assert!(client.send("QUIT").await.starts_with("221"));

        let mail = listener.wait_for_message(Duration::from_secs(2)).await;
        assert_eq!(mail.from, "a@example.com");
        assert_eq!(mail.to, ["b@example.org"]);
        assert_eq!(
            mail.data,
            "Subject: hi\r\n\r\n.leading dot\r\nplain\r\n.\r\n"
        );
        assert_eq!(mail.header("subject").as_deref(), Some("hi"));
        assert_eq!(mail.body(), ".leading dot\nplain\n.\n");
        assert_eq!(listener.received().len(), 1);
    }

    #[tokio::test]
    async fn a_refusing_listener_answers_451_after_the_data_then_accepts() {
        let listener = SmtpListener::start_with(SmtpSettings {
            refuse_first: 1,
            failure: TempFailure::Data451,
        })
        .await;
        let (mut client, _) = Client::connect(&listener).await;
        client.send("HELO client.example").await;
        let first = client.transaction(&["Subject: one", "", "x"]).await;
        assert!(first.starts_with("451"), "{first}");
        let second = client.transaction(&["Subject: two", "", "x"]).await;
        assert!(second.starts_with("250"), "{second}");

        assert_eq!(listener.refused(), 1);
        let mail = listener.wait_for_message(Duration::from_secs(2)).await;
        assert_eq!(mail.header("Subject").as_deref(), Some("two"));
        assert_eq!(listener.received().len(), 1);
    }

    #[tokio::test]
    async fn a_refusing_listener_can_turn_connections_away_with_421() {
        let listener = SmtpListener::start_with(SmtpSettings {
            refuse_first: 1,
            failure: TempFailure::Greeting421,
        })
        .await;
        let (_, greeting) = Client::connect(&listener).await;
        assert!(greeting.starts_with("421"), "{greeting}");
        let (_, greeting) = Client::connect(&listener).await;
        assert!(greeting.starts_with("220"), "{greeting}");
        assert_eq!(listener.refused(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "no message reached the test SMTP server")]
    async fn waiting_for_a_message_that_never_comes_fails_the_test() {
        let listener = SmtpListener::start().await;
        listener.wait_for_message(Duration::from_millis(100)).await;
    }

    #[test]
    fn headers_unfold_and_quoted_printable_bodies_decode() {
        let mail = ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: "Subject: a long\r\n subject\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\n break caf=C3=A9 =3D\r\n".into(),
        };
        assert_eq!(mail.header("subject").as_deref(), Some("a long subject"));
        assert_eq!(mail.body(), "soft break café =\n");
    }
}
