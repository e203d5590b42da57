"""Interop with a real headless Chromium (Debian package ``chromium``) on loopback.

Chromium loads ``chromium_page.html`` from a small local HTTP server (127.0.0.1 is a secure context, so
``WebTransport`` is available over plain http), connects to our ServerApp with ``serverCertificateHashes``
(draft-02 WebTransport over HTTP/3, see docs on Chromium 156), runs one scenario and POSTs a JSON result
back to the HTTP server. The browser is then killed. Chromium's own stderr log (``--enable-logging=stderr
--v=1``) and a net-log are kept in the test's tmp dir and quoted on failure.

Chromium is required: the tests fail (not skip) without it; install it with ``apt-get install -y chromium``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from interop_matrix import InteropHandle
from pywebtransport import (
    ServerApp,
    ServerConfig,
    WebTransportReceiveStream,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.exceptions import StreamResetError
from pywebtransport.utils import generate_browser_cert

pytestmark = pytest.mark.timeout(90)

PAGE = Path(__file__).resolve().parent / "chromium_page.html"
RESULT_TIMEOUT = 45.0  # seconds to wait for the page's POSTed result
STEP = 15.0  # per-await bound on the server side

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    explicit = os.environ.get("PWT_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is required for tests/interop/test_chromium.py but was not found on PATH "
        f"(looked for {', '.join(CHROMIUM_CANDIDATES)}; or set PWT_CHROMIUM). "
        "Install it with: apt-get update && apt-get install -y chromium"
    )


# --------------------------------------------------------------------------------------------
# Local HTTP server: serves the page, receives the result POST
# --------------------------------------------------------------------------------------------


class PageServer:
    def __init__(self) -> None:
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()
        page = PAGE.read_bytes()
        results = self.results

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?", 1)[0] == "/page.html":
                    self._reply(200, page, "text/html; charset=utf-8")
                else:
                    self._reply(404, b"not found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/result":
                    try:
                        results.put(json.loads(body))
                    except ValueError:
                        results.put({"ok": False, "error": f"unparsable result: {body[:200]!r}"})
                    self._reply(204, b"", "text/plain")
                else:
                    self._reply(404, b"not found", "text/plain")

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Cache-Control", "no-store")
                if body:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="page-server", daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


# --------------------------------------------------------------------------------------------
# Our server
# --------------------------------------------------------------------------------------------


@dataclass
class WTServer:
    app: ServerApp
    port: int
    cert_hash: bytes
    events: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)
    log: list[str] = field(default_factory=list)


@pytest.fixture
async def wt_server(tmp_path: Path) -> AsyncIterator[WTServer]:
    cert, key, digest = generate_browser_cert("127.0.0.1", output_dir=tmp_path, days_valid=10)
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))
    holder: dict[str, WTServer] = {}

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        srv = holder["s"]
        srv.log.append("echo session accepted")

        async def datagrams() -> None:
            while True:
                data = await session.datagrams.receive()
                srv.log.append(f"datagram {data!r}")
                await session.datagrams.send(b"ECHO: " + data)

        async def streams() -> None:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    data = await stream.read_all()
                    srv.log.append(f"bidi {data!r}")
                    await stream.write_all(b"ECHO: " + data)
                else:
                    assert isinstance(stream, WebTransportReceiveStream)
                    data = await stream.read_all()
                    srv.log.append(f"uni {data!r}")
                    await srv.events.put(("uni", data))
                    out = await session.create_unidirectional_stream()
                    await out.write_all(b"UNI: " + data)
                    # Only after the page has its uni reply does it look for our bidi stream.
                    push = await session.create_bidirectional_stream()
                    await push.write_all(b"server-initiated bidi")
                    srv.log.append("server bidi written")
                    answer = await push.read_all()
                    srv.log.append(f"server bidi answer {answer!r}")
                    await srv.events.put(("server-bidi-answer", answer))
                    # Acknowledge on a new uni stream: the page waits for it before it moves on, so
                    # a browser that closes its connection right after close() (Firefox) cannot
                    # race the answer's last bytes.
                    ack = await session.create_unidirectional_stream()
                    await ack.write_all(b"answer received")

        tasks = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
        try:
            await session.wait_closed()
            srv.log.append(f"closed code={session.close_code} reason={session.close_reason!r}")
            await srv.events.put(("closed", session.close_code, session.close_reason, session.closed_by_peer))
        finally:
            for t in tasks:
                t.cancel()

    @app.route("/bye")
    async def bye(session: WebTransportSession) -> None:
        srv = holder["s"]
        srv.log.append("bye session accepted")
        await asyncio.sleep(0.2)  # let the page see `ready` first
        await session.close(4242, "server says bye")
        srv.log.append("bye closed")

    @app.route("/reset")
    async def reset(session: WebTransportSession) -> None:
        srv = holder["s"]

        async def one(stream: WebTransportStream) -> None:
            try:
                data = await stream.readexactly(8)
                if data == b"reset-me":
                    # Tell the page we have the stream: without RESET_STREAM_AT (draft-02 browsers)
                    # a reset racing the stream's first bytes can make the whole stream vanish.
                    seen = await session.create_unidirectional_stream()
                    await seen.write_all(b"seen")
                data += await stream.read_all()
            except StreamResetError as exc:
                srv.log.append(f"reset by the page: {exc.reset_code}")
                await srv.events.put(("reset", exc.reset_code))
                return
            srv.log.append(f"reset request {data!r}")
            stream.abort_writing(9)

        tasks: list[asyncio.Future[None]] = []
        async for stream in session.incoming_streams():
            assert isinstance(stream, WebTransportStream)
            tasks.append(asyncio.ensure_future(one(stream)))

    @app.route("/proto")
    async def proto(session: WebTransportSession) -> None:
        srv = holder["s"]
        srv.log.append(f"proto session offered {session.available_protocols!r}")
        await srv.events.put(("protocols", session.available_protocols, session.headers.get("wt-available-protocols")))
        await session.wait_closed()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        holder["s"] = WTServer(app, app.server.local_address[1], digest)
        yield holder["s"]


# --------------------------------------------------------------------------------------------
# Chromium driver
# --------------------------------------------------------------------------------------------


class Browser:
    def __init__(self, tmp_path: Path) -> None:
        self.binary = find_chromium()
        self.dir = tmp_path / "chromium"
        self.dir.mkdir()
        self.stderr_path = self.dir / "stderr.log"
        self.netlog_path = self.dir / "netlog.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, url: str) -> None:
        args = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--mute-audio",
            f"--user-data-dir={self.dir / 'profile'}",
            "--remote-debugging-port=0",  # keeps the headless browser alive after load
            "--enable-logging=stderr",
            "--v=1",
            f"--log-net-log={self.netlog_path}",
            "--net-log-capture-mode=Everything",
            url,
        ]
        self.stderr_file = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: we kill exactly the browser's processes
        )

    async def wait_result(self, pages: PageServer, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return pages.results.get_nowait()
            except queue.Empty:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited early with {self.proc.returncode}\n{self.diagnostics()}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no result from the page within {timeout}s\n{self.diagnostics()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftover renderer / utility processes
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.stderr_file.close()

    def diagnostics(self, lines: int = 60) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no chromium log)"
        interesting = [
            ln
            for ln in text
            if any(
                k in ln
                for k in ("wt-interop", "CONSOLE", "WebTransport", "webtransport", "QUIC", "quic", "http3", "ERROR")
            )
        ]
        return f"chromium log ({self.stderr_path}), filtered tail:\n" + "\n".join(interesting[-lines:])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path)
    try:
        yield b
    finally:
        b.stop()


async def run_page(
    browser: Any, pages: PageServer, server: WTServer, scenario: str, who: str = "chrome"
) -> dict[str, Any]:
    """Load the page in ``browser`` (anything with start/wait_result/diagnostics) and return its result."""
    url = (
        f"http://127.0.0.1:{pages.port}/page.html?port={server.port}&hash={server.cert_hash.hex()}"
        f"&scenario={scenario}&who={who}"
    )
    browser.start(url)
    result = await browser.wait_result(pages)
    assert result.get("ok"), (
        f"page failed: {result.get('error')}\nsteps: {result.get('steps')}\nserver log: {server.log}\n"
        f"{browser.diagnostics()}"
    )
    return result


async def next_event(server: WTServer, browser: Browser) -> tuple[Any, ...]:
    try:
        return await asyncio.wait_for(server.events.get(), STEP)
    except asyncio.TimeoutError:
        raise AssertionError(f"server saw no further event; server log: {server.log}\n{browser.diagnostics()}")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def chromium_version() -> str:
    """Major version of the installed Chromium, e.g. "156" (the interop matrix row)."""
    out = subprocess.run([find_chromium(), "--version"], capture_output=True, text=True, timeout=30)
    words = [w for w in out.stdout.split() if w[:1].isdigit()]
    return words[0].split(".")[0] if words else "unknown"


def test_chromium_is_installed() -> None:
    binary = find_chromium()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Chromium" in out.stdout or "Chrome" in out.stdout, out.stdout


@pytest.mark.interop("Chromium", "browser → our server", "session", "bidi", "uni", "datagrams", "close")
async def test_chromium_streams_datagrams_and_client_close(
    wt_server: WTServer, page_server: PageServer, browser: Browser, interop: InteropHandle
) -> None:
    interop.version(chromium_version())
    result = await run_page(browser, page_server, wt_server, "echo")
    assert result["bidiEcho"] == "ECHO: hello bidi from chrome"
    assert result["uniReply"] == "UNI: hello uni from chrome"
    assert result["serverBidi"] == "server-initiated bidi"
    assert result["answerAck"] == "answer received"
    assert result["datagramEcho"].startswith("ECHO: dgram ")
    assert result["localClose"] == {"closeCode": 42, "reason": "bye from chrome"}

    events = [await next_event(wt_server, browser) for _ in range(3)]
    assert ("uni", b"hello uni from chrome") in events
    assert ("server-bidi-answer", b"chrome answers the server") in events
    closed = [e for e in events if e[0] == "closed"]
    assert closed == [("closed", 42, "bye from chrome", True)], (events, wt_server.log)


@pytest.mark.interop("Chromium", "browser → our server", "close")
async def test_chromium_sees_server_close_code_and_reason(
    wt_server: WTServer, page_server: PageServer, browser: Browser, interop: InteropHandle
) -> None:
    interop.version(chromium_version())
    result = await run_page(browser, page_server, wt_server, "bye")
    assert (result["closeCode"], result["reason"]) == (4242, "server says bye"), result


@pytest.mark.interop("Chromium", "browser → our server", "subprotocol")
async def test_chromium_negotiates_a_subprotocol(
    wt_server: WTServer, page_server: PageServer, browser: Browser, interop: InteropHandle
) -> None:
    """W3C ``protocols`` option: Chromium offers wt-available-protocols, our server picks the first."""
    interop.version(chromium_version())
    result = await run_page(browser, page_server, wt_server, "protocols")
    event = await next_event(wt_server, browser)
    assert event[0] == "protocols" and event[1] == ("pwt-echo.v2", "pwt-echo.v1"), (event, result)
    assert result["protocol"] == "pwt-echo.v2", result


@pytest.mark.interop("Chromium", "browser → our server", "reset")
async def test_chromium_stream_resets_carry_codes(
    wt_server: WTServer, page_server: PageServer, browser: Browser, interop: InteropHandle
) -> None:
    """writable.abort(WebTransportError{streamErrorCode: 7}) reaches our server as code 7, and our
    abort_writing(9) reaches the page as streamErrorCode 9 (mapped through the HTTP/3 code range)."""
    interop.version(chromium_version())
    result = await run_page(browser, page_server, wt_server, "reset")
    assert await next_event(wt_server, browser) == ("reset", 7), wt_server.log
    assert result["serverResetCode"] == 9, result
