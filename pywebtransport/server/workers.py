"""Worker processes: one ServerApp served by N processes on one UDP port (Linux).

How the port is shared (findings from msquic 2.5.1's ``src/platform/datapath_epoll.c``):

* msquic's listener socket gets ``SO_REUSEPORT`` whenever its datapath has more than one
  partition (one per CPU by default), so listeners in several processes of the same user can
  bind the same UDP port: they all join one kernel *reuseport group*.
* msquic also attaches a classic BPF program to that group (``SO_ATTACH_REUSEPORT_CBPF``,
  ``CxPlatSocketConfigureRss``) that picks the socket by *current CPU modulo its own socket
  count*. That is meant for the sockets of one process; with several processes it only ever
  selects the first process's sockets, so every connection would land in worker 1 (measured:
  20 of 20 sessions).
* So each worker, after its listener started, removes that program from the group
  (``SO_DETACH_REUSEPORT_BPF`` on one of its own sockets, found through ``/proc/self/fd``). The
  kernel then picks a socket by a hash of the packet's 4-tuple: every packet of one connection
  goes to the same socket, hence the same process - connections stay pinned - as long as the
  group does not change and the client's address does not (NAT rebinding or migration would
  move a connection to another worker, which drops it).

Consequences: workers start together and stop together. If one worker dies the others are
stopped too (changing the group would re-hash live connections of the survivors); run the
server under a supervisor that restarts it. Needs Linux and at least 2 CPUs (with one CPU
msquic sets no SO_REUSEPORT and the second worker fails to bind).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ..exceptions import ServerError

if TYPE_CHECKING:
    from .app import ServerApp

__all__ = ["run_workers", "share_port_by_hash"]

log = logging.getLogger("pywebtransport.server")

SO_DETACH_REUSEPORT_BPF = 68  # linux/asm-generic/socket.h (kernel >= 5.8)


def _own_udp_sockets(port: int) -> list[int]:
    """File descriptors of this process's UDP sockets bound to ``port``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if probe.type == socket.SOCK_DGRAM and probe.getsockname()[1] == port:
                found.append(fd)
        except OSError:
            pass
        finally:
            probe.close()  # closes the duplicate only
    return found


def share_port_by_hash(port: int) -> bool:
    """Make the kernel spread this UDP port's reuseport group by 4-tuple hash.

    Removes the CPU-steering program msquic attached to the group; returns False (and logs why)
    when no socket of ours is bound to ``port`` or the kernel refuses.
    """
    fds = _own_udp_sockets(port)
    if not fds:
        log.warning("workers: no UDP socket of this process is bound to port %d", port)
        return False
    probe = socket.socket(fileno=os.dup(fds[0]))
    try:
        probe.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
    except OSError as exc:
        log.warning("workers: cannot detach msquic's reuseport program on port %d: %s", port, exc)
        return False
    finally:
        probe.close()
    return True


def _worker_main(app: "ServerApp", host: str | None, port: int | None, conn: Connection, index: int) -> None:
    from ..quic import engine

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await app.startup()
        try:
            await app.server.listen(host=host, port=port)
            address = app.server.local_address
            assert address is not None
            shared = share_port_by_hash(address[1])
            conn.send(("ready", address[1], shared))
            await stop.wait()
        finally:
            await app.shutdown()

    code = 0
    try:
        asyncio.run(main())
    except BaseException as exc:  # report to the parent instead of dying silently
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", False))
        except OSError:
            pass
        code = 1
    finally:
        engine._atexit()  # forked workers leave through os._exit: close msquic here
    sys.exit(code)


def run_workers(
    app: "ServerApp",
    host: str | None,
    port: int | None,
    workers: int,
    duration: float | None = None,
    startup_timeout: float = 30.0,
) -> int:
    """Serve ``app`` from ``workers`` forked processes sharing one UDP port; returns an exit code.

    Blocks until SIGINT/SIGTERM (forwarded to the workers), until ``duration`` seconds passed,
    or until a worker exits (then the others are stopped too). With ``port=0`` the first
    worker's port is used by all.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not sys.platform.startswith("linux"):
        raise ServerError("workers > 1 need Linux (SO_REUSEPORT groups and /proc)")
    from .._native import NativeError, lib, worker_count

    try:
        msquic_workers = worker_count()
    except NativeError as exc:
        raise ServerError(str(exc)) from None
    if workers > 1 and msquic_workers == 1:
        # One msquic partition means one socket per port without SO_REUSEPORT.
        raise ServerError(
            "workers > 1 need msquic to run 2 or more worker threads per process "
            "(PYWEBTRANSPORT_MSQUIC_WORKERS=1 gives sockets that cannot share a port)"
        )
    if lib.pwt_is_initialized():
        raise ServerError(
            "ServerApp.run(workers=N) must be called before msquic is started in this process "
            "(create the app, but do not connect or listen, before running the workers)"
        )
    ctx = multiprocessing.get_context("fork")
    procs: list[Any] = []
    pipes: list[Connection] = []

    def spawn(index: int, bind_port: int | None) -> tuple[int, bool]:
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_main, args=(app, host, bind_port, child_end, index), name=f"pwt-worker-{index}"
        )
        proc.start()
        child_end.close()
        procs.append(proc)
        pipes.append(parent_end)
        if not parent_end.poll(startup_timeout):
            raise ServerError(f"worker {index} did not start within {startup_timeout}s")
        try:
            kind, value, shared = parent_end.recv()
        except EOFError:
            raise ServerError(f"worker {index} exited during startup") from None
        if kind != "ready":
            raise ServerError(f"worker {index} failed to start: {value}")
        return int(value), bool(shared)

    stopping = False

    def request_stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    old_int = signal.signal(signal.SIGINT, request_stop)
    old_term = signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        bound, shared = spawn(0, port)
        for index in range(1, workers):
            _, ok = spawn(index, bound)
            shared = shared and ok
        if workers > 1 and not shared:
            log.warning("workers: port %d is shared but not hashed by 4-tuple; connections may be unbalanced", bound)
        log.info("%d worker(s) serving on %s:%d", workers, host, bound)
        deadline = None if duration is None else time.monotonic() + duration
        while not stopping:
            if deadline is not None and time.monotonic() >= deadline:
                break
            dead = [p for p in procs if not p.is_alive()]
            if dead:
                log.error("workers: %s exited (code %s); stopping the others", dead[0].name, dead[0].exitcode)
                code = 1
                break
            time.sleep(0.1)
    except ServerError:
        code = 1
        raise
    finally:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        end = time.monotonic() + 15.0
        for proc in procs:
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for pipe in pipes:
            pipe.close()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return code
