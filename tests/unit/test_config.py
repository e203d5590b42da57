"""Tests for pywebtransport.config."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.config import ClientConfig, ConfigBuilder, ServerConfig
from pywebtransport.constants import Defaults
from pywebtransport.exceptions import ConfigurationError

MIB = 1024 * 1024


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[str, str]:
    cert = tmp_path / "server.crt"
    key = tmp_path / "server.key"
    cert.write_text("cert")
    key.write_text("key")
    return str(cert), str(key)


def test_client_defaults_match_documentation() -> None:
    config = ClientConfig()
    assert config.connect_timeout == 30.0
    assert config.read_timeout == 60.0
    assert config.write_timeout == 30.0
    assert config.close_timeout == 5.0
    assert config.stream_creation_timeout == 10.0
    assert config.max_streams == 100
    assert config.stream_buffer_size == 65536
    assert config.max_stream_buffer_size == MIB
    assert config.verify_mode == ssl.CERT_REQUIRED
    assert config.ca_certs is None and config.certfile is None and config.keyfile is None
    assert config.check_hostname is True
    assert config.alpn_protocols == ["h3", "h3-29"]
    assert config.http_version == "3"
    assert config.user_agent.startswith("pywebtransport/")
    assert config.headers == {}
    assert config.max_datagram_size == 65535
    assert config.initial_max_data == MIB
    assert config.initial_max_stream_data_bidi_local == 256 * 1024
    assert config.initial_max_stream_data_bidi_remote == 256 * 1024
    assert config.initial_max_stream_data_uni == 256 * 1024
    assert config.initial_max_streams_bidi == 100
    assert config.initial_max_streams_uni == 3
    assert (config.max_retries, config.retry_delay, config.retry_backoff, config.max_retry_delay) == (3, 1.0, 2.0, 30.0)
    assert config.debug is False and config.log_level == "INFO"
    assert config.congestion_control_algorithm == "cubic"
    assert config.max_incoming_streams == 100
    assert config.flow_control_window_size == MIB
    assert config.connection_idle_timeout == 60.0


def test_server_defaults_match_documentation() -> None:
    config = ServerConfig()
    assert config.bind_host == "localhost" and config.bind_port == 4433
    assert config.max_connections == 1000
    assert config.max_streams_per_connection == 100
    assert config.connection_timeout == 300.0
    assert (config.read_timeout, config.write_timeout) == (60.0, 30.0)
    assert config.certfile == "" and config.keyfile == "" and config.ca_certs is None
    assert config.verify_mode == ssl.CERT_NONE
    assert config.backlog == 128
    assert config.reuse_port is True and config.keep_alive is True
    assert config.middleware == []
    assert config.access_log is True
    assert config.max_sessions == 10000


def test_mutable_defaults_are_not_shared() -> None:
    first, second = ClientConfig(), ClientConfig()
    first.headers["a"] = "b"
    first.alpn_protocols.append("x")
    assert second.headers == {} and second.alpn_protocols == ["h3", "h3-29"]


def test_quickstart_forms(cert_pair: tuple[str, str]) -> None:
    client = ClientConfig.create(verify_mode=ssl.CERT_NONE)
    assert client.verify_mode == ssl.CERT_NONE
    server = ServerConfig.create(certfile=cert_pair[0], keyfile=cert_pair[1])
    assert (server.certfile, server.keyfile) == cert_pair


def test_positional_arguments_follow_documented_order() -> None:
    config = ClientConfig(5.0, 6.0)
    assert (config.connect_timeout, config.read_timeout) == (5.0, 6.0)
    server = ServerConfig("0.0.0.0", 9000)
    assert server.get_bind_address() == ("0.0.0.0", 9000)


def test_create_validates() -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.create(max_streams=0)
    assert info.value.config_key == "max_streams"


def test_create_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigurationError, match="verfy_mode"):
        ClientConfig.create(verfy_mode=ssl.CERT_NONE)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": -1.0}, "read_timeout"),
        ({"max_streams": -5}, "max_streams"),
        ({"stream_buffer_size": 0}, "stream_buffer_size"),
        ({"max_stream_buffer_size": 1024}, "max_stream_buffer_size"),
        ({"max_datagram_size": 0}, "max_datagram_size"),
        ({"max_datagram_size": 65536}, "max_datagram_size"),
        ({"initial_max_data": -1}, "initial_max_data"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_backoff": 0.5}, "retry_backoff"),
        ({"max_retry_delay": 0.5}, "max_retry_delay"),
        ({"verify_mode": 7}, "verify_mode"),
        ({"http_version": "2"}, "http_version"),
        ({"alpn_protocols": []}, "alpn_protocols"),
        ({"alpn_protocols": [""]}, "alpn_protocols"),
        ({"log_level": "CHATTY"}, "log_level"),
        ({"congestion_control_algorithm": "vegas"}, "congestion_control_algorithm"),
        ({"max_streams": "10"}, "max_streams"),
        ({"max_streams": True}, "max_streams"),
        ({"max_streams": 1.5}, "max_streams"),
        ({"connect_timeout": "fast"}, "connect_timeout"),
        ({"check_hostname": 1}, "check_hostname"),
        ({"headers": {"a": 1}}, "headers"),
        ({"alpn_protocols": "h3"}, "alpn_protocols"),
        ({"ca_certs": "/nonexistent/ca.pem"}, "ca_certs"),
    ],
)
def test_client_validation_names_the_field(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.create(**kwargs)
    assert info.value.config_key == key
    assert key in str(info.value)


def test_certfile_without_keyfile(cert_pair: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.create(certfile=cert_pair[0])
    assert info.value.config_key == "keyfile"
    with pytest.raises(ConfigurationError) as info:
        ServerConfig.create(keyfile=cert_pair[1])
    assert info.value.config_key == "certfile"


def test_missing_certificate_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        ServerConfig.create(certfile=str(tmp_path / "a.crt"), keyfile=str(tmp_path / "a.key"))
    assert info.value.config_key == "certfile"


def test_paths_may_be_pathlike(cert_pair: tuple[str, str]) -> None:
    config = ServerConfig.create(certfile=Path(cert_pair[0]), keyfile=Path(cert_pair[1]))
    assert config.certfile == cert_pair[0]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"bind_port": 70000}, "bind_port"),
        ({"bind_port": -1}, "bind_port"),
        ({"bind_host": ""}, "bind_host"),
        ({"max_connections": 0}, "max_connections"),
        ({"backlog": 0}, "backlog"),
        ({"connection_timeout": 0}, "connection_timeout"),
        ({"middleware": ["not callable"]}, "middleware"),
    ],
)
def test_server_validation_names_the_field(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ServerConfig.create(**kwargs)
    assert info.value.config_key == key


def test_port_zero_is_allowed_for_ephemeral_binding() -> None:
    assert ServerConfig.create(bind_port=0).bind_port == 0


def test_normalisation() -> None:
    config = ClientConfig.create(
        verify_mode="cert_none", log_level="debug", congestion_control_algorithm="BBR", alpn_protocols=("h3",)
    )
    assert config.verify_mode is ssl.CERT_NONE
    assert config.log_level == "DEBUG"
    assert config.congestion_control_algorithm == "bbr"
    assert config.alpn_protocols == ["h3"]
    assert ClientConfig.create(verify_mode=None).verify_mode is ssl.CERT_REQUIRED
    assert ServerConfig.create(verify_mode=None).verify_mode is ssl.CERT_NONE
    assert ClientConfig.create(verify_mode=0).verify_mode is ssl.CERT_NONE
    assert ServerConfig(certfile=None, keyfile=None).certfile == ""  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["cubic", "reno", "bbr"])
def test_congestion_algorithms(algorithm: str) -> None:
    assert ServerConfig.create(congestion_control_algorithm=algorithm).congestion_control_algorithm == algorithm


def test_int_accepted_for_float_fields() -> None:
    assert ClientConfig.create(connect_timeout=5).connect_timeout == 5


def test_copy_is_independent() -> None:
    original = ClientConfig.create(headers={"a": "1"})
    duplicate = original.copy()
    assert duplicate == original and duplicate is not original
    duplicate.headers["b"] = "2"
    duplicate.alpn_protocols.append("x")
    assert original.headers == {"a": "1"}
    assert original.alpn_protocols == ["h3", "h3-29"]


def test_copy_keeps_middleware_objects() -> None:
    async def middleware(session: object) -> bool:
        return True

    config = ServerConfig.create(middleware=[middleware])
    duplicate = config.copy()
    assert duplicate.middleware == [middleware] and duplicate.middleware is not config.middleware


def test_update_returns_new_validated_config() -> None:
    original = ClientConfig.create()
    updated = original.update(max_streams=7)
    assert updated.max_streams == 7 and original.max_streams == 100
    with pytest.raises(ConfigurationError):
        original.update(max_streams=0)
    with pytest.raises(ConfigurationError):
        original.update(unknown=1)


def test_merge_with_mapping_and_config() -> None:
    base = ClientConfig.create(max_streams=5, read_timeout=10.0)
    merged = base.merge({"read_timeout": 20.0})
    assert (merged.max_streams, merged.read_timeout) == (5, 20.0)
    # Only non-default values of the other config override.
    merged = base.merge(ClientConfig(write_timeout=3.0))
    assert (merged.max_streams, merged.read_timeout, merged.write_timeout) == (5, 10.0, 3.0)
    with pytest.raises(TypeError):
        base.merge(ServerConfig())  # type: ignore[arg-type]


def test_to_dict_round_trip(cert_pair: tuple[str, str]) -> None:
    config = ServerConfig.create(certfile=cert_pair[0], keyfile=cert_pair[1], bind_port=1234)
    data = config.to_dict()
    assert data["bind_port"] == 1234
    assert data["verify_mode"] == ssl.CERT_NONE
    assert ServerConfig.from_dict(data) == config
    data["alpn_protocols"].append("x")
    assert config.alpn_protocols == ["h3", "h3-29"]


@given(
    connect_timeout=st.floats(min_value=0.001, max_value=1e6),
    max_streams=st.integers(min_value=1, max_value=10**6),
    max_datagram_size=st.integers(min_value=1, max_value=65535),
    verify_mode=st.sampled_from(list(ssl.VerifyMode)),
)
def test_valid_values_round_trip(
    connect_timeout: float, max_streams: int, max_datagram_size: int, verify_mode: ssl.VerifyMode
) -> None:
    config = ClientConfig.create(
        connect_timeout=connect_timeout,
        max_streams=max_streams,
        max_datagram_size=max_datagram_size,
        verify_mode=verify_mode,
    )
    assert ClientConfig.from_dict(config.to_dict()) == config


@given(st.integers().filter(lambda n: not 1 <= n <= 65535))
def test_invalid_datagram_sizes_rejected(size: int) -> None:
    with pytest.raises(ConfigurationError):
        ServerConfig.create(max_datagram_size=size)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        ServerConfig.from_dict({"nope": 1})


def test_defaults_helper_matches_dataclass() -> None:
    client = ClientConfig.create(**Defaults.get_client_config())
    assert client == ClientConfig()
    server = ServerConfig.create(**Defaults.get_server_config())
    assert server == ServerConfig()


def test_client_development_and_production(tmp_path: Path) -> None:
    dev = ClientConfig.create_for_development()
    assert dev.verify_mode == ssl.CERT_NONE and dev.check_hostname is False and dev.debug
    assert ClientConfig.create_for_development(verify_ssl=True).verify_mode == ssl.CERT_REQUIRED
    assert ClientConfig.create_for_development(max_streams=3).max_streams == 3
    prod = ClientConfig.create_for_production()
    assert prod.verify_mode == ssl.CERT_REQUIRED and prod.check_hostname and not prod.debug
    with pytest.raises(ConfigurationError):
        ClientConfig.create_for_production(ca_certs=str(tmp_path / "missing.pem"))


def test_server_development_and_production(cert_pair: tuple[str, str]) -> None:
    dev = ServerConfig.create_for_development(host="127.0.0.1", port=0)
    assert dev.get_bind_address() == ("127.0.0.1", 0) and dev.debug and dev.log_level == "DEBUG"
    prod = ServerConfig.create_for_production(
        host="0.0.0.0", port=443, certfile=cert_pair[0], keyfile=cert_pair[1], ca_certs=cert_pair[0]
    )
    assert prod.verify_mode == ssl.CERT_OPTIONAL and not prod.debug
    with pytest.raises(ConfigurationError) as info:
        ServerConfig.create_for_production(host="0.0.0.0", port=443, certfile="", keyfile=cert_pair[1])
    assert info.value.config_key == "certfile"


def test_builder_server(cert_pair: tuple[str, str]) -> None:
    config = (
        ConfigBuilder("server")
        .bind("0.0.0.0", 8443)
        .security(certfile=cert_pair[0], keyfile=cert_pair[1])
        .performance(max_streams=50, buffer_size=4096, max_connections=10)
        .timeout(read=5.0, write=6.0)
        .debug()
        .build()
    )
    assert isinstance(config, ServerConfig)
    assert config.get_bind_address() == ("0.0.0.0", 8443)
    assert config.max_streams_per_connection == 50 and config.stream_buffer_size == 4096
    assert config.max_connections == 10
    assert (config.read_timeout, config.write_timeout) == (5.0, 6.0)
    assert config.debug and config.log_level == "DEBUG"


def test_builder_client() -> None:
    config = ConfigBuilder().timeout(connect=3.0).security(verify_mode=ssl.CERT_NONE).set(max_retries=0).build()
    assert isinstance(config, ClientConfig)
    assert config.connect_timeout == 3.0 and config.verify_mode == ssl.CERT_NONE and config.max_retries == 0
    assert isinstance(ConfigBuilder(ClientConfig).build(), ClientConfig)


def test_builder_errors() -> None:
    with pytest.raises(ConfigurationError):
        ConfigBuilder("client").bind("h", 1)
    with pytest.raises(ConfigurationError):
        ConfigBuilder("server").timeout(connect=1.0)
    with pytest.raises(ConfigurationError):
        ConfigBuilder("proxy")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError):
        ConfigBuilder("client").set(bogus=1)
    with pytest.raises(ConfigurationError):
        ConfigBuilder("client").performance(max_streams=0).build()


def test_flow_control_needs_nonzero_initial_limits() -> None:
    from pywebtransport import ClientConfig, ServerConfig
    from pywebtransport.exceptions import ConfigurationError

    for field in ("initial_max_data", "initial_max_streams_bidi", "initial_max_streams_uni"):
        with pytest.raises(ConfigurationError, match=field):
            ClientConfig.create(webtransport_flow_control=True, **{field: 0})
        with pytest.raises(ConfigurationError, match=field):
            ServerConfig.create(webtransport_flow_control=True, **{field: 0})
    ClientConfig.create(initial_max_data=0)  # without flow control zero means "not sent"


def test_server_certificate_hashes() -> None:
    digest = bytes(range(32))
    for pin in (digest, digest.hex(), digest.hex().upper(), ":".join(f"{b:02x}" for b in digest)):
        config = ClientConfig.create(server_certificate_hashes=[pin])
        assert config.pinned_certificate_hashes() == [digest]
    assert ClientConfig().server_certificate_hashes == []
    for bad in (b"short", "zz" * 32, "ab" * 31, 42):
        with pytest.raises(ConfigurationError) as info:
            ClientConfig.create(server_certificate_hashes=[bad])
        assert info.value.config_key == "server_certificate_hashes"
