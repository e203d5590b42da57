//! wtransport interop peer for PyWebTransport's test suite.
//!
//! One binary, two modes; every result is printed on stdout as one JSON object per line.
//!
//!   wt-interop-peer client --url https://127.0.0.1:PORT/path (--ca FILE | --insecure)
//!                          [--close-code N] [--close-reason TEXT]
//!       bidi echo (small + large payload), uni stream send (and an optional server-initiated uni
//!       stream read back), datagram echo with retries, then session close with code + reason.
//!       Prints {"event":"result", ...} and exits 0 (1 on a hard error, with {"event":"error"}).
//!
//!   wt-interop-peer server --cert FILE --key FILE [--port 0]
//!       Prints {"event":"listening","port":N}; per session echoes bidi streams and datagrams,
//!       reports uni streams, and prints how the session ended ({"event":"closed", ...}).
//!       A bidi stream carrying exactly "push" makes the server open a bidi and a uni stream.
//!       Exits when stdin reaches EOF (so a dying test harness never leaks it).

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wtransport::endpoint::IncomingSession;
use wtransport::error::ConnectionError;
use wtransport::tls::rustls;
use wtransport::{ClientConfig, Connection, Endpoint, Identity, RecvStream, ServerConfig, VarInt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LARGE_LEN: usize = 200_000;
const STEP: Duration = Duration::from_secs(10);

fn emit(v: Value) {
    // println! goes through a LineWriter: one flushed line per event
    println!("{v}");
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn describe_close(err: &ConnectionError) -> Value {
    match err {
        ConnectionError::ApplicationClosed(close) => json!({
            "kind": "application",
            "code": close.code().into_inner(),
            "reason": String::from_utf8_lossy(close.reason()),
        }),
        ConnectionError::ConnectionClosed(close) => json!({"kind": "connection", "detail": close.to_string()}),
        ConnectionError::LocallyClosed => json!({"kind": "local"}),
        ConnectionError::LocalH3Error(e) => json!({"kind": "local_h3_error", "detail": e.to_string()}),
        ConnectionError::TimedOut => json!({"kind": "timeout"}),
        other => json!({"kind": "other", "detail": other.to_string()}),
    }
}

async fn read_to_end(stream: &mut RecvStream) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = stream.read(&mut buf).await? {
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

async fn bounded<T, F>(what: &str, fut: F) -> Result<T, BoxError>
where
    F: std::future::Future<Output = Result<T, BoxError>>,
{
    match tokio::time::timeout(STEP, fut).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}").into()),
        Err(_) => Err(format!("{what}: timed out after {STEP:?}").into()),
    }
}

// ------------------------------------------------------------------------------------------
// client
// ------------------------------------------------------------------------------------------

async fn bidi_echo(conn: &Connection, payload: &[u8]) -> Result<Vec<u8>, BoxError> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    send.write_all(payload).await?;
    send.finish().await?;
    read_to_end(&mut recv).await
}

async fn run_client(args: &[String]) -> Result<(), BoxError> {
    let url = arg(args, "--url").ok_or("--url is required")?;
    let close_code: u32 = arg(args, "--close-code").map(|s| s.parse()).transpose()?.unwrap_or(4242);
    let close_reason = arg(args, "--close-reason").unwrap_or_else(|| "wtransport done".to_string());

    let builder = ClientConfig::builder().with_bind_default();
    let builder = if flag(args, "--insecure") {
        builder.with_no_cert_validation()
    } else {
        let ca = arg(args, "--ca").ok_or("either --ca FILE or --insecure is required")?;
        let chain = wtransport::tls::CertificateChain::load_pemfile(&ca).await?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in chain.as_slice() {
            roots.add(rustls::pki_types::CertificateDer::from(cert.der().to_vec()))?;
        }
        let tls = wtransport::tls::client::build_default_tls_config(std::sync::Arc::new(roots), None);
        builder.with_custom_tls(tls)
    };
    let config = builder
        .max_idle_timeout(Some(Duration::from_secs(30)))?
        .build();

    let endpoint = Endpoint::client(config)?;
    let t0 = Instant::now();
    let conn = bounded("connect", async { Ok(endpoint.connect(&url).await?) }).await?;
    emit(json!({"event": "connected", "session_id": conn.session_id().to_string(), "ms": t0.elapsed().as_millis() as u64}));

    // 1. bidi echo, small and large
    let small = b"Hello from wtransport".to_vec();
    let small_reply = bounded("bidi small", bidi_echo(&conn, &small)).await?;
    let large: Vec<u8> = (0..LARGE_LEN).map(|i| (i % 251) as u8).collect();
    let large_reply = bounded("bidi large", bidi_echo(&conn, &large)).await?;

    // 2. uni stream to the server; the server may answer on a uni stream of its own
    let uni_payload = b"wtransport one-way".to_vec();
    bounded("uni send", async {
        let mut s = conn.open_uni().await?.await?;
        s.write_all(&uni_payload).await?;
        s.finish().await?;
        Ok(())
    })
    .await?;
    let uni_reply = match tokio::time::timeout(Duration::from_secs(3), async {
        let mut r = conn.accept_uni().await?;
        read_to_end(&mut r).await
    })
    .await
    {
        Ok(Ok(data)) => Some(String::from_utf8_lossy(&data).into_owned()),
        _ => None,
    };

    // 3. datagram echo with retries (datagrams are unreliable)
    let dgram = b"wtransport datagram".to_vec();
    let mut dgram_reply: Option<String> = None;
    let mut attempts = 0u32;
    let max_dgram = conn.max_datagram_size();
    while attempts < 20 && dgram_reply.is_none() {
        attempts += 1;
        conn.send_datagram(&dgram)?;
        if let Ok(Ok(d)) = tokio::time::timeout(Duration::from_millis(500), conn.receive_datagram()).await {
            dgram_reply = Some(String::from_utf8_lossy(&d.payload()).into_owned());
        }
    }

    // 4. close. wtransport 0.7 has no CLOSE_WEBTRANSPORT_SESSION capsule API: Connection::close is a
    //    QUIC CONNECTION_CLOSE (application) carrying this code and reason.
    emit(json!({
        "event": "result",
        "bidi_sent": String::from_utf8_lossy(&small),
        "bidi_received": String::from_utf8_lossy(&small_reply),
        "bidi_large_sent_len": large.len(),
        "bidi_large_received_len": large_reply.len(),
        "bidi_large_equal": large_reply == large,
        "uni_sent": String::from_utf8_lossy(&uni_payload),
        "uni_received": uni_reply,
        "datagram_sent": String::from_utf8_lossy(&dgram),
        "datagram_received": dgram_reply,
        "datagram_attempts": attempts,
        "max_datagram_size": max_dgram,
        "close_code": close_code,
        "close_reason": close_reason,
    }));
    conn.close(VarInt::from_u32(close_code), close_reason.as_bytes());
    // give quinn a moment to put the CONNECTION_CLOSE on the wire
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    emit(json!({"event": "done"}));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// server
// ------------------------------------------------------------------------------------------

async fn serve_session(id: u64, incoming: IncomingSession) -> Result<(), BoxError> {
    let request = incoming.await?;
    emit(json!({
        "event": "session",
        "id": id,
        "authority": request.authority(),
        "path": request.path(),
        "origin": request.origin(),
        "headers": request.headers(),
    }));
    let conn = request.accept().await?;
    loop {
        tokio::select! {
            r = conn.accept_bi() => match r {
                Ok((mut send, mut recv)) => {
                    let conn2 = conn.clone();
                    tokio::spawn(async move {
                        let res: Result<(), BoxError> = async {
                            let data = read_to_end(&mut recv).await?;
                            emit(json!({"event": "bidi", "id": id, "len": data.len(),
                                        "data": String::from_utf8_lossy(&data[..data.len().min(256)])}));
                            send.write_all(&data).await?;
                            send.finish().await?;
                            if data == b"push" {
                                let (mut s, mut r) = conn2.open_bi().await?.await?;
                                s.write_all(b"wtransport bidi").await?;
                                s.finish().await?;
                                let mut u = conn2.open_uni().await?.await?;
                                u.write_all(b"wtransport uni").await?;
                                u.finish().await?;
                                let answer = read_to_end(&mut r).await?;
                                emit(json!({"event": "push-answer", "id": id,
                                            "data": String::from_utf8_lossy(&answer)}));
                            }
                            Ok(())
                        }.await;
                        if let Err(e) = res {
                            emit(json!({"event": "stream-error", "id": id, "detail": e.to_string()}));
                        }
                    });
                }
                Err(e) => {
                    let mut v = describe_close(&e);
                    v["event"] = json!("closed");
                    v["id"] = json!(id);
                    emit(v);
                    return Ok(());
                }
            },
            r = conn.accept_uni() => match r {
                Ok(mut recv) => {
                    tokio::spawn(async move {
                        match read_to_end(&mut recv).await {
                            Ok(data) => emit(json!({"event": "uni", "id": id,
                                                    "data": String::from_utf8_lossy(&data)})),
                            Err(e) => emit(json!({"event": "stream-error", "id": id, "detail": e.to_string()})),
                        }
                    });
                }
                Err(_) => { /* reported by the accept_bi arm */ }
            },
            r = conn.receive_datagram() => if let Ok(d) = r {
                let payload = d.payload();
                emit(json!({"event": "datagram", "id": id, "data": String::from_utf8_lossy(&payload)}));
                if let Err(e) = conn.send_datagram(&payload) {
                    emit(json!({"event": "datagram-error", "id": id, "detail": e.to_string()}));
                }
            },
        }
    }
}

async fn run_server(args: &[String]) -> Result<(), BoxError> {
    let cert = arg(args, "--cert").ok_or("--cert is required")?;
    let key = arg(args, "--key").ok_or("--key is required")?;
    let port: u16 = arg(args, "--port").map(|s| s.parse()).transpose()?.unwrap_or(0);
    let identity = Identity::load_pemfiles(&cert, &key).await?;
    let config = ServerConfig::builder()
        .with_bind_address(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .with_identity(identity)
        .max_idle_timeout(Some(Duration::from_secs(30)))?
        .build();
    let server = Endpoint::server(config)?;
    emit(json!({"event": "listening", "port": server.local_addr()?.port()}));

    // exit on stdin EOF so the harness never leaks this process
    tokio::spawn(async {
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        emit(json!({"event": "stdin-eof"}));
        std::process::exit(0);
    });

    for id in 0u64.. {
        let incoming = server.accept().await;
        tokio::spawn(async move {
            if let Err(e) = serve_session(id, incoming).await {
                emit(json!({"event": "session-error", "id": id, "detail": e.to_string()}));
            }
        });
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("client") => run_client(&args[2..]).await,
        Some("server") => run_server(&args[2..]).await,
        _ => Err("usage: wt-interop-peer client --url URL (--ca FILE | --insecure) | server --cert F --key F [--port N]".into()),
    };
    if let Err(e) = result {
        emit(json!({"event": "error", "detail": e.to_string()}));
        std::process::exit(1);
    }
}
