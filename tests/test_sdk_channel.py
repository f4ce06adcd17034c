"""Production channel options: TLS, mTLS, bearer token, keepalive, sizes, service config, env."""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator

import grpc
import pytest

from ledger_client import ChannelSettings, LedgerClient, RetryPolicy, TlsSettings, errors
from tests.fake_ledger import Fail, FakeServer, Stall

ACCOUNT = "01900000-0000-7000-8000-00000000000a"
ONE_TRY = RetryPolicy(max_attempts=1)


def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def issue(directory: pathlib.Path, name: str, extensions: str) -> None:
    """A P-256 key and a certificate for it signed by the test CA in `directory`."""
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=directory,
    )
    (directory / f"{name}.ext").write_text(extensions + "\n")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=directory,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A throwaway CA, a server certificate for 127.0.0.1 / ledger.test, and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ledger test CA",
        cwd=directory,
    )
    issue(directory, "server", "subjectAltName=DNS:ledger.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    issue(directory, "client", "extendedKeyUsage=clientAuth")
    return directory


@pytest.fixture
def mtls_server(pki: pathlib.Path) -> Iterator[FakeServer]:
    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    with FakeServer(credentials) as server:
        yield server


def test_mtls_with_a_bearer_token(mtls_server: FakeServer, pki: pathlib.Path) -> None:
    tls = TlsSettings(ca_file=pki / "ca.pem", cert_file=pki / "client.pem", key_file=pki / "client.key")
    with LedgerClient(mtls_server.target, tls=tls, token="secret-key") as client:
        assert client.get_account(account_id=ACCOUNT).id == ""
    (attempt,) = mtls_server.ledger.attempts
    assert attempt.metadata["authorization"] == "Bearer secret-key"


def test_the_server_name_can_be_overridden(mtls_server: FakeServer, pki: pathlib.Path) -> None:
    tls = TlsSettings(
        ca_file=pki / "ca.pem",
        cert_file=pki / "client.pem",
        key_file=pki / "client.key",
        server_name="ledger.test",
    )
    with LedgerClient(mtls_server.target, tls=tls) as client:
        client.get_account(account_id=ACCOUNT)


def test_without_a_client_certificate_mtls_refuses(mtls_server: FakeServer, pki: pathlib.Path) -> None:
    server_only = TlsSettings(ca_file=pki / "ca.pem")
    waiting = ChannelSettings(mtls_server.target, tls=server_only)
    # by default a call waits (within its deadline) for a connection that never comes ...
    expected = pytest.raises(errors.DeadlineExceeded)
    with LedgerClient(settings=waiting, retry=ONE_TRY, timeout=1) as client, expected:
        client.get_account(account_id=ACCOUNT)
    # ... and with wait_for_ready=False the handshake failure surfaces at once
    fail_fast = ChannelSettings(mtls_server.target, tls=server_only, wait_for_ready=False)
    with LedgerClient(settings=fail_fast, retry=ONE_TRY) as client, pytest.raises(errors.Unavailable):
        client.get_account(account_id=ACCOUNT)
    assert mtls_server.ledger.attempts == []


def test_an_untrusted_server_is_refused(mtls_server: FakeServer, pki: pathlib.Path) -> None:
    tls = TlsSettings(cert_file=pki / "client.pem", key_file=pki / "client.key")  # system roots only
    settings = ChannelSettings(mtls_server.target, tls=tls, wait_for_ready=False)
    with LedgerClient(settings=settings, retry=ONE_TRY) as client, pytest.raises(errors.Unavailable):
        client.get_account(account_id=ACCOUNT)
    assert mtls_server.ledger.attempts == []


def test_channel_options() -> None:
    settings = ChannelSettings(
        target="ledger.internal:443", keepalive_time_ms=30_000, max_receive_message_bytes=1024
    )
    options = dict(settings.options())
    assert options["grpc.keepalive_time_ms"] == 30_000 and options["grpc.max_receive_message_length"] == 1024
    assert options["grpc.max_send_message_length"] == 32 * 1024 * 1024
    config = json.loads(options["grpc.service_config"])
    assert config["methodConfig"][0]["waitForReady"] is True
    assert "retryPolicy" not in config["methodConfig"][0], "retries are the SDK's, never gRPC's as well"
    fail_fast = json.loads(dict(ChannelSettings(wait_for_ready=False).options())["grpc.service_config"])
    assert fail_fast["methodConfig"][0]["waitForReady"] is False
    custom = ChannelSettings(
        service_config={"loadBalancingConfig": [{"pick_first": {}}]}, extra_options=[("a", 1)]
    )
    assert json.loads(dict(custom.options())["grpc.service_config"]) == {
        "loadBalancingConfig": [{"pick_first": {}}]
    }
    assert ("a", 1) in custom.options()
    assert ChannelSettings(token="k").call_metadata() == (("authorization", "Bearer k"),)
    assert ChannelSettings().call_metadata() == ()
    with pytest.raises(ValueError):
        ChannelSettings(token="two\nlines")
    with pytest.raises(ValueError):
        TlsSettings(cert_file=pathlib.Path("client.pem"))


def test_settings_from_the_environment() -> None:
    env = {
        "LEDGER_TARGET": "ledger:50051",
        "LEDGER_API_KEY": "k",
        "LEDGER_TLS_CA": "/ca.pem",
        "LEDGER_TLS_SERVER_NAME": "ledger.test",
    }
    settings = ChannelSettings.from_env(env)
    assert (settings.target, settings.token) == ("ledger:50051", "k")
    assert settings.tls == TlsSettings(ca_file=pathlib.Path("/ca.pem"), server_name="ledger.test")
    plain = ChannelSettings.from_env({})
    assert (plain.target, plain.token, plain.tls) == ("127.0.0.1:50051", None, None)
    assert ChannelSettings.from_env({"LEDGER_TLS": "1"}).tls == TlsSettings()


def test_calls_go_over_the_configured_connections_in_turn() -> None:
    """`connections=k` (for a server whose processes share one port): k distinct TCP connections,
    used in turn, one call after another; a retry stays on its first attempt's connection."""
    with pytest.raises(ValueError):
        ChannelSettings(connections=0)
    with pytest.raises(ValueError):
        ChannelSettings(connections=65)
    assert ChannelSettings.from_env({"LEDGER_CONNECTIONS": "4"}).connections == 4
    assert ChannelSettings.from_env({}).connections == 1
    settings = ChannelSettings(connections=3)
    assert ("grpc.use_local_subchannel_pool", 1) not in settings.options(0)
    assert ("grpc.use_local_subchannel_pool", 1) in settings.options(1)
    account_a, account_b = "01900000-0000-7000-8000-00000000000a", "01900000-0000-7000-8000-00000000000b"
    with FakeServer() as server:
        server.ledger.then(*([Stall(0.0)] * 6), Fail(grpc.StatusCode.UNAVAILABLE))  # the 7th call fails once
        with LedgerClient(settings=ChannelSettings(target=server.target, connections=3),
                          retry=RetryPolicy(initial_backoff_s=0.01)) as client:
            for _ in range(7):
                client.create_transfer(debit_account_id=account_a, credit_account_id=account_b, amount=1,
                                       asset="USD")
        peers = [a.peer for a in server.ledger.attempts]
    assert len(peers) == 8 and len(set(peers[:3])) == 3, peers
    assert peers[3:6] == peers[:3], "the connections are used in turn"
    assert peers[6] == peers[7] == peers[0], "a retry stays on its connection"
