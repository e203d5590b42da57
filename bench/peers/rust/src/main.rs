//! wtransport (0.7.2) benchmark peer for bench/peers_bench.py.
//!
//!   wt-bench-peer server --cert PEM --key PEM [--port 0]
//!   wt-bench-peer client --url https://127.0.0.1:PORT/bench --scenario NAME [options]
//!
//! bench/peers/README.md describes the protocol and the scenarios; the Python and Go peers
//! implement exactly the same behaviour.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Semaphore;
use wtransport::endpoint::IncomingSession;
use wtransport::{ClientConfig, Connection, Endpoint, Identity, RecvStream, SendStream, ServerConfig, VarInt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const MSG: usize = 64;
const READ_BUF: usize = 64 << 10;
const DGRAM_WAIT: Duration = Duration::from_millis(200);
const RATE_STALL: Duration = Duration::from_millis(100);

fn emit(v: Value) {
    println!("{v}"); // Rust's stdout is a LineWriter: one flushed line per event
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    match arg(args, name) {
        Some(s) => s.parse::<T>().map_err(|e| format!("{name}: {e}").into()),
        None => Ok(default),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ------------------------------------------------------------------------------------------
// server

async fn read_mode(recv: &mut RecvStream) -> Res<u8> {
    let mut mode = [0u8; 1];
    recv.read_exact(&mut mode).await?;
    Ok(mode[0])
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream) -> Res<()> {
    let mut buf = vec![0u8; READ_BUF];
    match read_mode(&mut recv).await? {
        b'U' => {
            let mut n: u64 = 0;
            while let Some(k) = recv.read(&mut buf).await? {
                n += k as u64;
            }
            send.write_all(&n.to_be_bytes()).await?;
            send.finish().await?;
        }
        b'D' => {
            let mut hdr = [0u8; 12];
            recv.read_exact(&mut hdr).await?;
            let total = u64::from_be_bytes(hdr[..8].try_into()?);
            let chunk = u32::from_be_bytes(hdr[8..].try_into()?) as u64;
            let data = vec![b'd'; chunk as usize];
            let mut sent = 0u64;
            while sent < total {
                let w = chunk.min(total - sent);
                send.write_all(&data[..w as usize]).await?;
                sent += w;
            }
            send.finish().await?;
        }
        b'E' => {
            while let Some(k) = recv.read(&mut buf).await? {
                send.write_all(&buf[..k]).await?;
            }
            send.finish().await?;
        }
        other => return Err(format!("unknown mode byte {other}").into()),
    }
    Ok(())
}

async fn serve_session(incoming: IncomingSession) -> Res<()> {
    let request = incoming.await?;
    let conn = request.accept().await?;
    let dconn = conn.clone();
    tokio::spawn(async move {
        while let Ok(d) = dconn.receive_datagram().await {
            if dconn.send_datagram(d.payload()).is_err() {
                break;
            }
        }
    });
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            let _ = serve_stream(send, recv).await;
        });
    }
    Ok(())
}

async fn run_server(args: &[String]) -> Res<()> {
    let cert = arg(args, "--cert").ok_or("--cert is required")?;
    let key = arg(args, "--key").ok_or("--key is required")?;
    let port: u16 = num(args, "--port", 0)?;
    let idle: f64 = num(args, "--idle-timeout", 120.0)?;
    let keepalive: f64 = num(args, "--keepalive", 20.0)?;
    let identity = Identity::load_pemfiles(&cert, &key).await?;
    let config = ServerConfig::builder()
        .with_bind_address(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .with_identity(identity)
        .max_idle_timeout(Some(secs(idle)))?
        .keep_alive_interval(Some(secs(keepalive)))
        .build();
    let server = Endpoint::server(config)?;
    emit(json!({"event": "listening", "port": server.local_addr()?.port()}));
    tokio::spawn(async {
        // exit when the driver closes our stdin
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
    loop {
        let incoming = server.accept().await;
        tokio::spawn(async move {
            let _ = serve_session(incoming).await;
        });
    }
}

// ------------------------------------------------------------------------------------------
// client

struct Opts {
    url: String,
    scenario: String,
    size: u64,
    chunk: u64,
    warmup_size: u64,
    rounds: usize,
    warmup: usize,
    inflight: usize,
    sessions: usize,
    requests: usize,
    concurrency: usize,
    duration: f64,
    timeout: f64,
    ramp_deadline: f64,
    hold_timeout: f64,
    idle: f64,
    keepalive: f64,
}

type Stdin = tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>;

/// Tell the driver the timed part is about to start and wait for its go-ahead.
async fn ready(stdin: &mut Stdin) -> Res<()> {
    emit(json!({"event": "ready"}));
    stdin.next_line().await?;
    Ok(())
}

/// Print the result, then wait (bounded) for the driver's release line before the caller cleans
/// up, so that the driver samples CPU and RSS with nothing else going on.
async fn report(stdin: &mut Stdin, mut res: Value, hold: f64) {
    res["event"] = json!("result");
    emit(res);
    let _ = tokio::time::timeout(secs(hold), stdin.next_line()).await;
}

impl Opts {
    fn endpoint(&self) -> Res<Endpoint<wtransport::endpoint::endpoint_side::Client>> {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_no_cert_validation()
            .max_idle_timeout(Some(secs(self.idle)))?
            .keep_alive_interval(Some(secs(self.keepalive)))
            .build();
        Ok(Endpoint::client(config)?)
    }

    async fn dial(&self, ep: &Endpoint<wtransport::endpoint::endpoint_side::Client>) -> Res<Connection> {
        match tokio::time::timeout(secs(self.timeout), ep.connect(&self.url)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(format!("connect timed out after {}s", self.timeout).into()),
        }
    }
}

fn message(i: u64) -> Vec<u8> {
    let mut m = vec![b'e'; MSG];
    m[..8].copy_from_slice(&i.to_be_bytes());
    m
}

fn datagram(seq: u64) -> Vec<u8> {
    let mut d = vec![b'x'; MSG];
    d[..8].copy_from_slice(&seq.to_be_bytes());
    d
}

async fn read_to_end(recv: &mut RecvStream) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    while let Some(n) = recv.read(&mut buf).await? {
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

async fn do_upload(conn: &Connection, size: u64, chunk: u64) -> Res<u64> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    send.write_all(b"U").await?;
    let data = vec![b'u'; chunk as usize];
    let mut sent = 0u64;
    while sent < size {
        let w = chunk.min(size - sent);
        send.write_all(&data[..w as usize]).await?;
        sent += w;
    }
    send.finish().await?;
    let reply = read_to_end(&mut recv).await?;
    if reply.len() != 8 {
        return Err(format!("upload reply of {} bytes", reply.len()).into());
    }
    Ok(u64::from_be_bytes(reply[..8].try_into()?))
}

async fn do_download(conn: &Connection, size: u64, chunk: u64) -> Res<u64> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    let mut req = Vec::with_capacity(13);
    req.push(b'D');
    req.extend_from_slice(&size.to_be_bytes());
    req.extend_from_slice(&(chunk as u32).to_be_bytes());
    send.write_all(&req).await?;
    send.finish().await?;
    let mut buf = vec![0u8; READ_BUF];
    let mut n = 0u64;
    while let Some(k) = recv.read(&mut buf).await? {
        n += k as u64;
    }
    Ok(n)
}

async fn request_echo(conn: &Connection, msg: &[u8]) -> Res<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    let mut req = Vec::with_capacity(1 + msg.len());
    req.push(b'E');
    req.extend_from_slice(msg);
    send.write_all(&req).await?;
    send.finish().await?;
    read_to_end(&mut recv).await
}

/// Send `seq` and wait for its echo, resending after DGRAM_WAIT (clock restarted).
async fn ping_datagram(conn: &Connection, seq: u64) -> Res<(Duration, u32)> {
    let pkt = datagram(seq);
    let mut retries = 0u32;
    loop {
        let t0 = Instant::now();
        conn.send_datagram(&pkt)?;
        let found = tokio::time::timeout(DGRAM_WAIT, async {
            loop {
                let d = conn.receive_datagram().await?;
                let p = d.payload();
                if p.len() == MSG && u64::from_be_bytes(p[..8].try_into().unwrap()) == seq {
                    return Ok::<Duration, BoxError>(t0.elapsed());
                }
            }
        })
        .await;
        match found {
            Ok(Ok(el)) => return Ok((el, retries)),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                retries += 1;
                if retries > 50 {
                    return Err(format!("datagram {seq}: no echo after {retries} tries").into());
                }
            }
        }
    }
}

async fn close_conn(conn: &Connection) {
    conn.close(VarInt::from_u32(0), b"");
}

/// Give quinn a moment to put CONNECTION_CLOSE on the wire before the process exits.
async fn linger(ep: &Endpoint<wtransport::endpoint::endpoint_side::Client>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
}

async fn run_client(args: &[String]) -> Res<()> {
    let o = Arc::new(Opts {
        url: arg(args, "--url").ok_or("--url is required")?,
        scenario: arg(args, "--scenario").ok_or("--scenario is required")?,
        size: num(args, "--size", 64u64 << 20)?,
        chunk: num(args, "--chunk", 64u64 << 10)?,
        warmup_size: num(args, "--warmup-size", 4u64 << 20)?,
        rounds: num(args, "--rounds", 1000)?,
        warmup: num(args, "--warmup", 100)?,
        inflight: num(args, "--inflight", 32)?,
        sessions: num(args, "--sessions", 100)?,
        requests: num(args, "--requests", 20)?,
        concurrency: num(args, "--concurrency", 32)?,
        duration: num(args, "--duration", 8.0)?,
        timeout: num(args, "--timeout", 10.0)?,
        ramp_deadline: num(args, "--ramp-deadline", 120.0)?,
        hold_timeout: num(args, "--hold-timeout", 300.0)?,
        idle: num(args, "--idle-timeout", 120.0)?,
        keepalive: num(args, "--keepalive", 20.0)?,
    });
    let mut stdin: Stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    match o.scenario.as_str() {
        "upload" | "download" => {
            let ep = o.endpoint()?;
            let conn = o.dial(&ep).await.map_err(|e| format!("connect: {e}"))?;
            let up = o.scenario == "upload";
            if o.warmup_size > 0 {
                if up {
                    do_upload(&conn, o.warmup_size, o.chunk).await?;
                } else {
                    do_download(&conn, o.warmup_size, o.chunk).await?;
                }
            }
            ready(&mut stdin).await?;
            let t0 = Instant::now();
            let v = if up {
                let n = do_upload(&conn, o.size, o.chunk).await?;
                json!({"bytes": o.size, "seconds": t0.elapsed().as_secs_f64(), "reply": n})
            } else {
                let n = do_download(&conn, o.size, o.chunk).await?;
                json!({"bytes": n, "seconds": t0.elapsed().as_secs_f64()})
            };
            report(&mut stdin, v, o.hold_timeout).await;
            close_conn(&conn).await;
            linger(&ep).await;
        }
        "echo" => {
            let ep = o.endpoint()?;
            let conn = o.dial(&ep).await.map_err(|e| format!("connect: {e}"))?;
            let (mut send, mut recv) = conn.open_bi().await?.await?;
            send.write_all(b"E").await?;
            let mut got = [0u8; MSG];
            let mut samples: Vec<u64> = Vec::with_capacity(o.rounds);
            let mut mismatches = 0u64;
            for i in 0..(o.warmup + o.rounds) {
                if i == o.warmup {
                    ready(&mut stdin).await?;
                }
                let msg = message(i as u64);
                let t0 = Instant::now();
                send.write_all(&msg).await?;
                recv.read_exact(&mut got).await?;
                let el = t0.elapsed();
                if i >= o.warmup {
                    samples.push(el.as_nanos() as u64);
                }
                if got[..] != msg[..] {
                    mismatches += 1;
                }
            }
            send.finish().await?;
            read_to_end(&mut recv).await?;
            report(&mut stdin, json!({"samples_ns": samples, "mismatches": mismatches}), o.hold_timeout).await;
            close_conn(&conn).await;
            linger(&ep).await;
        }
        "stream_echo" => {
            let ep = o.endpoint()?;
            let conn = o.dial(&ep).await.map_err(|e| format!("connect: {e}"))?;
            let mut samples: Vec<u64> = Vec::with_capacity(o.rounds);
            let mut mismatches = 0u64;
            for i in 0..(o.warmup + o.rounds) {
                if i == o.warmup {
                    ready(&mut stdin).await?;
                }
                let msg = message(i as u64);
                let t0 = Instant::now();
                let got = request_echo(&conn, &msg).await?;
                let el = t0.elapsed();
                if i >= o.warmup {
                    samples.push(el.as_nanos() as u64);
                }
                if got != msg {
                    mismatches += 1;
                }
            }
            report(&mut stdin, json!({"samples_ns": samples, "mismatches": mismatches}), o.hold_timeout).await;
            close_conn(&conn).await;
            linger(&ep).await;
        }
        "dgram" => {
            let ep = o.endpoint()?;
            let conn = o.dial(&ep).await.map_err(|e| format!("connect: {e}"))?;
            let mut samples: Vec<u64> = Vec::with_capacity(o.rounds);
            let mut retries = 0u32;
            for i in 0..(o.warmup + o.rounds) {
                if i == o.warmup {
                    ready(&mut stdin).await?;
                }
                let (el, r) = ping_datagram(&conn, i as u64).await?;
                if i >= o.warmup {
                    samples.push(el.as_nanos() as u64);
                    retries += r;
                }
            }
            report(&mut stdin, json!({"samples_ns": samples, "retries": retries}), o.hold_timeout).await;
            close_conn(&conn).await;
            linger(&ep).await;
        }
        "dgram_rate" => {
            let ep = o.endpoint()?;
            let conn = o.dial(&ep).await.map_err(|e| format!("connect: {e}"))?;
            for i in 0..o.warmup {
                ping_datagram(&conn, i as u64).await?;
            }
            ready(&mut stdin).await?;
            let mut seq: u64 = 1 << 32;
            let (mut inflight, mut sent, mut received, mut stalls) = (0usize, 0u64, 0u64, 0u64);
            let t0 = Instant::now();
            let deadline = t0 + secs(o.duration);
            while Instant::now() < deadline {
                while inflight < o.inflight {
                    conn.send_datagram(datagram(seq))?;
                    seq += 1;
                    sent += 1;
                    inflight += 1;
                }
                match tokio::time::timeout(RATE_STALL, conn.receive_datagram()).await {
                    Ok(Ok(_)) => {
                        received += 1;
                        inflight = inflight.saturating_sub(1);
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        stalls += 1;
                        inflight = 0;
                    }
                }
            }
            let el = t0.elapsed();
            let mut late = 0u64;
            while let Ok(Ok(_)) = tokio::time::timeout(DGRAM_WAIT, conn.receive_datagram()).await {
                late += 1;
            }
            let v = json!({"sent": sent, "received": received, "late": late, "stalls": stalls,
                           "seconds": el.as_secs_f64()});
            report(&mut stdin, v, o.hold_timeout).await;
            close_conn(&conn).await;
            linger(&ep).await;
        }
        "setup" => {
            let ep = o.endpoint()?; // one client endpoint; every connect is a new QUIC connection
            let mut samples: Vec<u64> = Vec::with_capacity(o.rounds);
            let mut errors = 0u64;
            let mut first_error = String::new();
            for i in 0..(o.warmup + o.rounds) {
                if i == o.warmup {
                    ready(&mut stdin).await?;
                }
                let t0 = Instant::now();
                match o.dial(&ep).await {
                    Ok(conn) => {
                        let el = t0.elapsed();
                        if i >= o.warmup {
                            samples.push(el.as_nanos() as u64);
                        }
                        close_conn(&conn).await;
                    }
                    Err(e) => {
                        errors += 1;
                        if first_error.is_empty() {
                            first_error = e.to_string();
                        }
                    }
                }
            }
            let v = json!({"samples_ns": samples, "errors": errors, "first_error": first_error});
            report(&mut stdin, v, o.hold_timeout).await;
            linger(&ep).await;
        }
        "concurrent" => {
            let ep = Arc::new(o.endpoint()?);
            {
                let conn = o.dial(&ep).await.map_err(|e| format!("warm-up connect: {e}"))?;
                for j in 0..o.requests {
                    request_echo(&conn, &message(j as u64)).await?;
                }
                close_conn(&conn).await;
            }
            ready(&mut stdin).await?;
            let errs: Arc<Mutex<(u64, String)>> = Arc::new(Mutex::new((0, String::new())));
            let note = |errs: &Arc<Mutex<(u64, String)>>, e: String| {
                let mut g = errs.lock().unwrap();
                g.0 += 1;
                if g.1.is_empty() {
                    g.1 = e;
                }
            };
            let t0 = Instant::now();
            let mut handles = Vec::new();
            for _ in 0..o.sessions {
                let (o, ep) = (o.clone(), ep.clone());
                handles.push(tokio::spawn(async move { o.dial(&ep).await.map_err(|e| e.to_string()) }));
            }
            let mut conns = Vec::new();
            for h in handles {
                match h.await? {
                    Ok(c) => conns.push(c),
                    Err(e) => note(&errs, e),
                }
            }
            let t1 = Instant::now();
            let mut handles = Vec::new();
            for (i, conn) in conns.iter().enumerate() {
                let (o, conn) = (o.clone(), conn.clone());
                handles.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    for j in 0..o.requests {
                        let msg = message((i * o.requests + j) as u64);
                        match request_echo(&conn, &msg).await {
                            Ok(got) if got == msg => done += 1,
                            Ok(_) => return (done, Some("echo mismatch".to_string())),
                            Err(e) => return (done, Some(e.to_string())),
                        }
                    }
                    (done, None)
                }));
            }
            let mut done = 0u64;
            for h in handles {
                let (d, e) = h.await?;
                done += d;
                if let Some(e) = e {
                    note(&errs, e);
                }
            }
            let t2 = Instant::now();
            let v = {
                let g = errs.lock().unwrap();
                json!({"sessions": o.sessions, "requests": done, "errors": g.0, "first_error": g.1,
                       "connect_seconds": (t1 - t0).as_secs_f64(), "echo_seconds": (t2 - t1).as_secs_f64(),
                       "seconds": (t2 - t0).as_secs_f64()})
            };
            report(&mut stdin, v, o.hold_timeout).await;
            for conn in &conns {
                close_conn(conn).await;
            }
            linger(&ep).await;
        }
        "idle" => {
            let ep = Arc::new(o.endpoint()?);
            ready(&mut stdin).await?;
            let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
            let state: Arc<Mutex<(Vec<Connection>, u64, BTreeSet<String>)>> =
                Arc::new(Mutex::new((Vec::new(), 0, BTreeSet::new())));
            let t0 = Instant::now();
            let ramp_end = t0 + secs(o.ramp_deadline);
            let mut handles = Vec::new();
            let mut attempted = 0usize;
            while attempted < o.sessions && Instant::now() < ramp_end {
                let permit = sem.clone().acquire_owned().await?;
                attempted += 1;
                let (o, ep, state) = (o.clone(), ep.clone(), state.clone());
                handles.push(tokio::spawn(async move {
                    let r = o.dial(&ep).await;
                    let mut g = state.lock().unwrap();
                    match r {
                        Ok(c) => g.0.push(c),
                        Err(e) => {
                            g.1 += 1;
                            if g.2.len() < 3 {
                                g.2.insert(e.to_string());
                            }
                        }
                    }
                    drop(permit);
                }));
            }
            for h in handles {
                h.await?;
            }
            let el = t0.elapsed();
            let v = {
                let g = state.lock().unwrap();
                json!({"attempted": attempted, "established": g.0.len(),
                       "errors": g.1 + (o.sessions - attempted) as u64,
                       "error_samples": g.2.iter().collect::<Vec<_>>(), "seconds": el.as_secs_f64()})
            };
            report(&mut stdin, v, o.hold_timeout).await;
            let conns = std::mem::take(&mut state.lock().unwrap().0);
            for conn in &conns {
                close_conn(conn).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), ep.wait_idle()).await;
        }
        other => return Err(format!("unknown scenario {other:?}").into()),
    }
    emit(json!({"event": "done"}));
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("client") => run_client(&args[2..]).await,
        Some("server") => run_server(&args[2..]).await,
        _ => Err("usage: wt-bench-peer server --cert F --key F [--port N] | client --url URL --scenario S".into()),
    };
    if let Err(e) = result {
        emit(json!({"event": "error", "detail": e.to_string()}));
        std::process::exit(1);
    }
}
