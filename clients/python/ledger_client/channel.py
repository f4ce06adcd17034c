"""Production channels: TLS / mTLS, bearer token, keepalive, message sizes, gRPC service config.

`ChannelSettings` is plain data (from code, or from the environment with `from_env`); the clients
turn it into a grpc.Channel or grpc.aio.Channel. The bearer token is not a channel credential: the
clients send it as call metadata `authorization: Bearer <key>` on every call, so it works the same
over TLS and over plaintext loopback (use TLS anywhere else).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"
MESSAGE_BYTES_MAX = 32 * 1024 * 1024  # as the server: a full 8000-item batch fits
USER_AGENT = "ledger-client-python/0.1"


def default_service_config(wait_for_ready: bool) -> dict[str, Any]:
    """The gRPC service config the SDK uses unless the caller passes its own."""
    return {
        # Spread calls over every address a DNS name resolves to.
        "loadBalancingConfig": [{"round_robin": {}}],
        # waitForReady: while the server is unreachable (a restart, a deploy) an attempt waits for
        # the connection, bounded by its deadline, instead of failing at once: outages are ridden
        # out by time, not by burning attempts. Retries are the SDK's own (same request id,
        # deadline-bounded), so there is no gRPC retryPolicy: two layers would multiply attempts.
        "methodConfig": [{"name": [{"service": "ledger.v1.Ledger"}], "waitForReady": wait_for_ready}],
    }


@dataclass(frozen=True)
class TlsSettings:
    """Server authentication (CA bundle; None = system roots) and, for mTLS, a client certificate."""

    ca_file: pathlib.Path | None = None
    cert_file: pathlib.Path | None = None
    key_file: pathlib.Path | None = None
    server_name: str | None = None  # override the name checked against the server certificate

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mTLS needs both a client certificate and its key")

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: pathlib.Path | None) -> bytes | None:
            return None if path is None else pathlib.Path(path).read_bytes()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True)
class ChannelSettings:
    target: str = DEFAULT_TARGET
    token: str | None = None  # sent as `authorization: Bearer <token>`
    tls: TlsSettings | None = None  # None: plaintext (loopback and tests only)
    keepalive_time_ms: int = 60_000  # ping an active connection idle this long, to detect dead peers
    keepalive_timeout_ms: int = 20_000  # ... and drop it when the ping is not answered in this time
    reconnect_backoff_initial_ms: int = 100  # gRPC's own reconnect backoff (default 1 s growing to 120 s)
    reconnect_backoff_max_ms: int = 2_000  # ... kept short so a restarted server is found again quickly
    max_send_message_bytes: int = MESSAGE_BYTES_MAX
    max_receive_message_bytes: int = MESSAGE_BYTES_MAX
    # True: calls wait (within their deadline) for a connection; False: fail fast with the
    # connection error, e.g. for interactive tools where a TLS mistake should surface at once.
    wait_for_ready: bool = True
    service_config: Mapping[str, Any] | None = None  # None: default_service_config(wait_for_ready)
    extra_options: Sequence[tuple[str, Any]] = ()  # any further grpc.* channel arguments
    # Connections the client spreads its calls over, in turn. A server started with
    # `ledger-server --processes N` shares one port between N processes and the kernel assigns
    # each connection to one of them: open at least N (a few more evens the spread).
    connections: int = 1

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("target is required, e.g. 127.0.0.1:50051")
        if self.token is not None and (not self.token or any(c in self.token for c in "\r\n")):
            raise ValueError("token must be a non-empty single line")
        assert self.keepalive_time_ms >= 1_000 and self.keepalive_timeout_ms >= 1_000
        assert 10 <= self.reconnect_backoff_initial_ms <= self.reconnect_backoff_max_ms <= 120_000
        assert 0 < self.max_send_message_bytes <= 1 << 30 and 0 < self.max_receive_message_bytes <= 1 << 30
        if not 1 <= self.connections <= 64:
            raise ValueError("connections must be 1..64")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ChannelSettings:
        """Settings from LEDGER_TARGET, LEDGER_API_KEY and LEDGER_TLS_{CA,CERT,KEY,SERVER_NAME}."""
        env = os.environ if environ is None else environ
        tls = tls_from_values(
            ca_file=env.get("LEDGER_TLS_CA"),
            cert_file=env.get("LEDGER_TLS_CERT"),
            key_file=env.get("LEDGER_TLS_KEY"),
            server_name=env.get("LEDGER_TLS_SERVER_NAME"),
            enabled=env.get("LEDGER_TLS", "") in ("1", "true", "yes"),
        )
        values: dict[str, Any] = {
            "target": env.get("LEDGER_TARGET") or DEFAULT_TARGET,
            "token": env.get("LEDGER_API_KEY") or None,
            "tls": tls,
            "connections": int(env.get("LEDGER_CONNECTIONS") or 1),
        }
        values.update(overrides)
        return cls(**values)

    def options(self, index: int = 0) -> list[tuple[str, Any]]:
        """Channel arguments; channels after the first get a subchannel pool of their own, since
        channels with equal arguments would otherwise share one connection."""
        options: list[tuple[str, Any]] = [*([("grpc.use_local_subchannel_pool", 1)] if index else []),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 0),  # idle channels stay quiet
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", self.reconnect_backoff_initial_ms),
            ("grpc.max_reconnect_backoff_ms", self.reconnect_backoff_max_ms),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.primary_user_agent", USER_AGENT),
        ]
        config = (
            default_service_config(self.wait_for_ready)
            if self.service_config is None
            else self.service_config
        )
        if config:
            options.append(("grpc.service_config", json.dumps(config)))
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        options.extend(self.extra_options)
        return options

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def open(self, index: int = 0) -> grpc.Channel:
        """The index-th connection (0 .. connections - 1)."""
        if self.tls is None:
            return grpc.insecure_channel(self.target, options=self.options(index))
        return grpc.secure_channel(self.target, self.tls.credentials(), options=self.options(index))

    def open_aio(self, index: int = 0) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.target, options=self.options(index))
        return grpc.aio.secure_channel(self.target, self.tls.credentials(), options=self.options(index))


def tls_from_values(
    *,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    server_name: str | None,
    enabled: bool,
) -> TlsSettings | None:
    """TlsSettings when TLS is asked for explicitly or implied by any TLS file; None for plaintext."""
    if not (enabled or ca_file or cert_file or key_file):
        return None

    def path(value: str | None) -> pathlib.Path | None:
        return pathlib.Path(value) if value else None

    return TlsSettings(
        ca_file=path(ca_file),
        cert_file=path(cert_file),
        key_file=path(key_file),
        server_name=server_name or None,
    )
