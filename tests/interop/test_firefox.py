"""Interop with a real headless Firefox ESR (Debian package ``firefox-esr``) on loopback.

Same rig as test_chromium.py: Firefox loads ``chromium_page.html`` (``who=firefox``) from a local HTTP
server on 127.0.0.1 (a secure context), connects to our ServerApp with ``serverCertificateHashes``, runs a
scenario and POSTs its JSON result back.  No WebDriver is involved (Debian ships no geckodriver): Firefox
runs with ``--headless`` and a fresh temporary profile whose ``user.js`` turns off first-run pages,
telemetry, updates and background connections and enables WebTransport and its datagrams.  Firefox's own
logs (``MOZ_LOG`` for WebTransport/HTTP/3) are kept in the test's tmp dir and quoted on failure.

Firefox is required: the tests fail (not skip) without it; install it with ``apt-get install -y firefox-esr``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop_matrix import InteropHandle
from pywebtransport.h3.errors import webtransport_code_to_http3
from test_chromium import PageServer, WTServer, page_server, run_page, wt_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)

RESULT_TIMEOUT = 60.0  # Firefox's first start with a new profile is slower than Chromium's
STEP = 15.0
FIREFOX_CANDIDATES = ("firefox-esr", "firefox")

# Prefs for a throwaway profile: no network traffic of its own, no first-run UI, WebTransport on.
PREFS = {
    "network.webtransport.enabled": True,
    "network.webtransport.datagrams.enabled": True,
    "network.http.http3.enable": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "about:blank",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.enabled": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "browser.search.update": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "remote.prefs.recommended": False,
    "browser.tabs.warnOnClose": False,
    "dom.disable_open_during_load": False,
}


def find_firefox() -> str:
    explicit = os.environ.get("PWT_FIREFOX")
    if explicit:
        return explicit
    for name in FIREFOX_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Firefox is required for tests/interop/test_firefox.py but was not found on PATH "
        f"(looked for {', '.join(FIREFOX_CANDIDATES)}; or set PWT_FIREFOX). "
        "Install it with: apt-get update && apt-get install -y firefox-esr"
    )


def firefox_version() -> str:
    """Major version of the installed Firefox, e.g. "153 ESR" (the interop matrix row)."""
    out = subprocess.run([find_firefox(), "--version"], capture_output=True, text=True, timeout=60)
    words = [w for w in out.stdout.split() if w[:1].isdigit()]
    if not words:
        return "unknown"
    major = words[0].split(".")[0]
    return f"{major} ESR" if "esr" in words[0] else major


class Firefox:
    def __init__(self, tmp_path: Path) -> None:
        self.binary = find_firefox()
        self.dir = tmp_path / "firefox"
        self.profile = self.dir / "profile"
        self.profile.mkdir(parents=True)
        self.log_path = self.dir / "firefox.log"
        self.moz_log = self.dir / "moz.log"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f"user_pref({_js(k)}, {_js(v)});" for k, v in PREFS.items()]
        (self.profile / "user.js").write_text("\n".join(lines) + "\n")

    def start(self, url: str) -> None:
        env = dict(os.environ)
        env.update(
            {
                "MOZ_HEADLESS": "1",
                "MOZ_LOG": "WebTransport:5,nsHttp:3,neqo_http3::*:3,neqo_transport::*:3",
                "MOZ_LOG_FILE": str(self.moz_log),
                "MOZ_CRASHREPORTER_DISABLE": "1",
                "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
                "HOME": str(self.dir),  # keep ~/.mozilla out of the real home
            }
        )
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "--headless", "--no-remote", "--new-instance", "--profile", str(self.profile), url],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: we kill exactly Firefox's processes
        )

    async def wait_result(self, pages: PageServer, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        import queue

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return pages.results.get_nowait()
            except queue.Empty:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"firefox exited early with {self.proc.returncode}\n{self.diagnostics()}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no result from the page within {timeout}s\n{self.diagnostics()}")

    def diagnostics(self, lines: int = 60) -> str:
        parts = []
        for path in (self.log_path, *sorted(self.dir.glob("moz.log*"))):
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            keep = [ln for ln in text if any(k in ln for k in ("wt-interop", "WebTransport", "rror", "close", "Close"))]
            parts.append(f"{path}, filtered tail:\n" + "\n".join(keep[-lines:]))
        return "\n".join(parts) or "(no firefox log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # content / utility processes
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log_file.close()


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def firefox(tmp_path: Path) -> Iterator[Firefox]:
    b = Firefox(tmp_path)
    try:
        yield b
    finally:
        b.stop()


async def next_event(server: WTServer, browser: Firefox) -> tuple[Any, ...]:
    try:
        return await asyncio.wait_for(server.events.get(), STEP)
    except asyncio.TimeoutError:
        raise AssertionError(f"server saw no further event; server log: {server.log}\n{browser.diagnostics()}")


def test_firefox_is_installed() -> None:
    out = subprocess.run([find_firefox(), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Firefox" in out.stdout, out.stdout


@pytest.mark.interop("Firefox", "browser → our server", "session", "bidi", "uni", "datagrams")
async def test_firefox_streams_datagrams_and_client_close(
    wt_server: WTServer, page_server: PageServer, firefox: Firefox, interop: InteropHandle
) -> None:
    interop.version(firefox_version())
    result = await run_page(firefox, page_server, wt_server, "echo", who="firefox")
    interop.ok("session")
    assert result["bidiEcho"] == "ECHO: hello bidi from firefox", result
    assert result["uniReply"] == "UNI: hello uni from firefox", result
    assert result["serverBidi"] == "server-initiated bidi"
    assert result["answerAck"] == "answer received", result
    interop.ok("uni")
    assert result["datagramEcho"].startswith("ECHO: dgram "), result
    interop.ok("datagrams")

    events = [await next_event(wt_server, firefox) for _ in range(3)]
    assert ("uni", b"hello uni from firefox") in events
    assert ("server-bidi-answer", b"firefox answers the server") in events
    interop.ok("bidi")
    assert result["localClose"] == {"closeCode": 42, "reason": "bye from firefox"}, result
    closed = [e for e in events if e[0] == "closed"]
    # Firefox (neqo) sends its CLOSE capsule and closes the QUIC connection (H3_NO_ERROR) at once,
    # like webtransport-go v0.11 (README note): when both land in one receive batch msquic does not
    # indicate the capsule's stream bytes, so our server may see only the connection close.  What
    # must hold: the session ends as closed by the peer, and a code that arrives is the one sent.
    # The "close" cell of the matrix is proven by test_firefox_sees_server_close_code_and_reason.
    assert len(closed) == 1 and closed[0][3] is True, (events, wt_server.log)
    assert closed[0][1:3] in ((42, "bye from firefox"), (None, "")), (events, wt_server.log)


@pytest.mark.interop("Firefox", "browser → our server", "close")
async def test_firefox_sees_server_close_code_and_reason(
    wt_server: WTServer, page_server: PageServer, firefox: Firefox, interop: InteropHandle
) -> None:
    interop.version(firefox_version())
    result = await run_page(firefox, page_server, wt_server, "bye", who="firefox")
    assert (result["closeCode"], result["reason"]) == (4242, "server says bye"), result


@pytest.mark.interop("Firefox", "browser → our server", "subprotocol")
async def test_firefox_has_no_subprotocol_negotiation(
    wt_server: WTServer, page_server: PageServer, firefox: Firefox, interop: InteropHandle
) -> None:
    """Firefox 153 ESR ignores the W3C ``protocols`` option: it offers nothing and has no
    ``WebTransport.protocol``; the session itself works.  Fails (so the matrix gets updated)
    once Firefox starts offering subprotocols."""
    interop.version(firefox_version())
    result = await run_page(firefox, page_server, wt_server, "protocols", who="firefox")
    event = await next_event(wt_server, firefox)
    assert event == ("protocols", (), None), (event, result)
    assert "protocol" not in result, result  # JSON drops undefined: the attribute does not exist
    interop.unsupported("subprotocol")


@pytest.mark.interop("Firefox", "browser → our server", "reset")
async def test_firefox_stream_resets_carry_codes(
    wt_server: WTServer, page_server: PageServer, firefox: Firefox, interop: InteropHandle
) -> None:
    """The page's writable.abort(streamErrorCode 7) reaches our server as 7.  Our abort_writing(9)
    reaches Firefox with the right wire code (its HTTP/3 log shows app_err = mapped 9); Firefox 153
    usually does not expose the received code to JavaScript (the read fails with a TypeError), but
    depending on timing it sometimes does, and then it must be 9."""
    interop.version(firefox_version())
    result = await run_page(firefox, page_server, wt_server, "reset", who="firefox")
    assert await next_event(wt_server, firefox) == ("reset", 7), wt_server.log
    assert result["serverResetCode"] in (9, "TypeError: Error in input stream"), result
    wire = f"app_err={webtransport_code_to_http3(9)}"
    logs = "".join(p.read_text(errors="replace") for p in firefox.dir.glob("moz.log*"))
    assert "Handle a stream reset" in logs and wire in logs, firefox.diagnostics()
