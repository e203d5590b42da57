"""ReconnectingClient: keeps one session to a URL alive, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .client import WebTransportClient
from .config import ClientConfig
from .events import EventEmitter
from .exceptions import ClientError, TimeoutError
from .session import WebTransportSession

__all__ = ["ReconnectingClient"]

log = logging.getLogger("pywebtransport.reconnect")


class ReconnectingClient(EventEmitter):
    """Maintains one session to ``url``.

    When the session closes for any reason other than `close()`, a new one is
    opened.  Failed attempts are retried after ``retry_delay`` seconds,
    multiplied by ``backoff_factor`` after each failure and capped at
    ``max_retry_delay``.  After ``max_retries`` consecutive failed retries
    (negative: never give up) the client stops and emits ``"failed"``.

    Events: ``"connected"`` (first session), ``"reconnected"`` (each later
    one), ``"disconnected"`` (session lost), ``"failed"`` (gave up); the event
    data is a dict with ``session`` / ``attempts`` / ``error`` as relevant.
    """

    def __init__(
        self,
        url: str,
        config: ClientConfig | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        backoff_factor: float | None = None,
        max_retry_delay: float | None = None,
    ) -> None:
        super().__init__()
        # Omitted arguments come from the configuration's retry_* fields when a
        # configuration is given, else from the 0.1.x defaults (5, 1.0, 2.0, 30.0).
        if max_retries is None:
            max_retries = config.max_retries if config is not None else 5
        if retry_delay is None:
            retry_delay = config.retry_delay if config is not None else 1.0
        if backoff_factor is None:
            backoff_factor = config.retry_backoff if config is not None else 2.0
        if max_retry_delay is None:
            max_retry_delay = max(retry_delay, config.max_retry_delay if config is not None else 30.0)
        if retry_delay < 0:
            raise ValueError("retry_delay must not be negative")
        if backoff_factor < 1:
            raise ValueError("backoff_factor must be at least 1")
        if max_retry_delay < retry_delay:
            raise ValueError("max_retry_delay must be at least retry_delay")
        self._url = url
        self._client = WebTransportClient(config=config)
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._backoff = backoff_factor
        self._max_delay = max_retry_delay
        self._session: WebTransportSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._connections = 0
        self._attempts = 0

    @property
    def url(self) -> str:
        """The WebTransport URL this client (re)connects to."""
        return self._url

    @property
    def is_connected(self) -> bool:
        """Whether a session is open and ready right now."""
        s = self._session
        return s is not None and s.is_ready and not s.is_closed

    @property
    def is_closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._closed

    @property
    def reconnect_count(self) -> int:
        """How many sessions were opened after the first one."""
        return max(0, self._connections - 1)

    def retry_delay_for(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        return float(min(self._retry_delay * self._backoff ** max(0, attempt - 1), self._max_delay))

    def start(self) -> None:
        """Start the background connection keeper (done implicitly by get_session)."""
        if self._closed:
            raise ClientError("reconnecting client is closed", target_url=self._url)
        if self._task is None:
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._closed:
                self._attempts += 1
                try:
                    session = await self._client.connect(self._url)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    if 0 <= self._max_retries < failures:
                        self._failure = exc
                        log.warning("giving up on %s after %d attempts: %s", self._url, failures, exc)
                        self._notify()
                        await self.emit("failed", data={"attempts": failures, "error": exc})
                        return
                    delay = self.retry_delay_for(failures)
                    log.info("connect to %s failed (%s); retry in %.2fs", self._url, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self._session = session
                self._connections += 1
                self._notify()
                name = "connected" if self._connections == 1 else "reconnected"
                await self.emit(name, data={"session": session, "attempts": self._attempts})
                await session.wait_closed()
                if self._closed:
                    return
                await self.emit("disconnected", data={"session": session, "reason": session.close_reason})
        finally:
            self._notify()

    async def get_session(self, timeout: float | None = None) -> WebTransportSession:
        """The current open session, waiting for a (re)connection if needed.

        Raises `ClientError` once the client gave up or was closed, and
        `TimeoutError` if ``timeout`` passes first.
        """
        self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self.is_connected:
                assert self._session is not None
                return self._session
            if self._closed:
                raise ClientError("reconnecting client is closed", target_url=self._url)
            if self._failure is not None:
                raise ClientError(
                    f"could not connect to {self._url}: {self._failure}", target_url=self._url
                ) from self._failure
            assert self._changed is not None
            self._changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"no session to {self._url} within {timeout}s", timeout_duration=timeout, operation="get_session"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue

    def get_stats(self) -> dict[str, Any]:
        """URL, connection state, connection/reconnect/attempt counts and whether reconnecting gave up."""
        return {
            "url": self._url,
            "connected": self.is_connected,
            "connections": self._connections,
            "reconnects": self.reconnect_count,
            "attempts": self._attempts,
            "failed": self._failure is not None,
            "max_retries": self._max_retries,
        }

    async def close(self) -> None:
        """Stop reconnecting and close the current session."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if self._session is not None:
            await self._session.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._client.close()
        self._notify()
        await super().close()

    async def __aenter__(self) -> "ReconnectingClient":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
