"""Package-level promises: typing, the public names, and the layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pywebtransport

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pywebtransport"


def test_public_all_is_pinned() -> None:
    assert sorted(pywebtransport.__all__) == sorted(
        [
            "Address", "AuthenticationError", "CertificateError", "ClientConfig", "ClientError",
            "ConfigurationError", "ConnectionError", "ConnectionState", "DatagramError", "Event",
            "EventEmitter", "EventType", "FlowControlError", "HandshakeError", "Headers",
            "ProtocolError", "ServerApp", "ServerConfig", "ServerError", "SessionError",
            "SessionState", "StreamDirection", "StreamError", "StreamState", "TimeoutError", "URL",
            "WebTransportClient", "WebTransportDatagramDuplexStream", "WebTransportError",
            "WebTransportReceiveStream", "WebTransportSendStream", "WebTransportServer",
            "WebTransportSession", "WebTransportStream", "__version__",
            "DatagramReliabilityLayer", "create_development_server",
        ]
    )
    for name in pywebtransport.__all__:
        assert hasattr(pywebtransport, name), name


def test_py_typed_marker_ships() -> None:
    assert (PKG / "py.typed").exists()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.add("." * node.level + base)
    return names


@pytest.mark.parametrize("path", sorted((PKG / "h3").glob("*.py")), ids=lambda p: p.name)
def test_sans_io_core_imports_no_io(path: Path) -> None:
    for name in _imports(path):
        assert not name.startswith("asyncio"), name
        assert "_native" not in name and "quic" not in name.split("."), name


@pytest.mark.parametrize("path", sorted((PKG / "quic").glob("*.py")), ids=lambda p: p.name)
def test_quic_layer_does_not_import_upper_layers(path: Path) -> None:
    for name in _imports(path):
        for upper in ("h3", "session", "client", "server", "connection"):
            assert not name.startswith(".." + upper) and name != f"pywebtransport.{upper}", name


@pytest.mark.timeout(300)
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "pywebtransport"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_docs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_0_1_x_submodule_names_resolve() -> None:
    import importlib

    expected = {
        "pywebtransport.client": ["WebTransportClient", "ClientPool", "PooledClient", "ReconnectingClient", "ClientMonitor"],
        "pywebtransport.connection": ["WebTransportConnection", "ConnectionLoadBalancer"],
        "pywebtransport.datagram": [
            "WebTransportDatagramDuplexStream", "DatagramBroadcaster", "DatagramReliabilityLayer", "DatagramMonitor",
        ],
        "pywebtransport.stream": ["WebTransportStream", "StreamPool"],
        "pywebtransport.server": ["ServerApp", "WebTransportServer", "create_development_server"],
    }
    for module, names in expected.items():
        mod = importlib.import_module(module)
        for name in names:
            assert getattr(mod, name) is not None, (module, name)
    with pytest.raises(AttributeError):
        importlib.import_module("pywebtransport.client").NoSuchThing


# Modules whose public classes, methods and functions all carry a docstring (the API
# reference is generated from them). Add a module here once it is documented.
DOCUMENTED_MODULES = [
    "pywebtransport.stream",
    "pywebtransport.session",
    "pywebtransport.server.server",
    "pywebtransport.server.app",
    "pywebtransport.datagram",
    "pywebtransport.connection",
    "pywebtransport.client",
    "pywebtransport.backplane",
    "pywebtransport.balancer",
    "pywebtransport.cli",
    "pywebtransport.compat.client",
    "pywebtransport.compat.connection",
    "pywebtransport.compat.datagram",
    "pywebtransport.compat.diagnostics",
    "pywebtransport.compat.server",
    "pywebtransport.compat.session",
    "pywebtransport.compat.settings",
    "pywebtransport.compat.stats",
    "pywebtransport.compat.stream",
    "pywebtransport.config",
    "pywebtransport.constants",
    "pywebtransport.datagram_extras",
    "pywebtransport.events",
    "pywebtransport.exceptions",
    "pywebtransport.loadgen",
    "pywebtransport.metrics",
    "pywebtransport.monitor",
    "pywebtransport.observers",
    "pywebtransport.otel",
    "pywebtransport.pool",
    "pywebtransport.pubsub",
    "pywebtransport.protocol",
    "pywebtransport.quic.config",
    "pywebtransport.quic.observe",
    "pywebtransport.reconnect",
    "pywebtransport.rpc",
    "pywebtransport.serializer",
    "pywebtransport.server.dev",
    "pywebtransport.server.middleware",
    "pywebtransport.server.router",
    "pywebtransport.server.workers",
    "pywebtransport.structured",
    "pywebtransport.types",
    "pywebtransport.utils",
]


def _undocumented(module_name: str, name: str, obj: object) -> list[str]:
    """Public functions, classes and their own methods/properties without a docstring."""
    import inspect

    missing: list[str] = []
    if inspect.isfunction(obj):
        if not (obj.__doc__ or "").strip():
            missing.append(f"{module_name}.{name}")
    elif inspect.isclass(obj):
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(f"{module_name}.{name}")
        for attr, member in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member) and not (member.__doc__ or "").strip():
                missing.append(f"{module_name}.{name}.{attr}")
    return missing


def test_documented_modules_have_docstrings_everywhere() -> None:
    import importlib
    import inspect

    missing: list[str] = []
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            missing.append(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
                continue  # private, or imported from elsewhere (checked in its own module)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                missing.extend(_undocumented(module_name, name, obj))
    # The top-level names, as far as they come from the documented modules.
    for name in pywebtransport.__all__:
        obj = getattr(pywebtransport, name)
        if getattr(obj, "__module__", None) in DOCUMENTED_MODULES:
            missing.extend(_undocumented("pywebtransport", name, obj))
    assert not missing, "public objects without a docstring:\n" + "\n".join(sorted(set(missing)))
