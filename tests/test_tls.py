"""TLS and mutual TLS: a certificate's subject common name names a certificate caller; bearer keys
also work over TLS; unknown subjects and certificates from another CA are refused."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger.v1 import admin_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_server.access.callers import provision_admin_key
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import ADMIN_KEY
from tests.ledger_api import rid

Pem = tuple[bytes, bytes]  # (certificate, key)


def issue(common_name: str, issuer: Pem | None, server: bool = False) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    if issuer is None:
        signer_key, issuer_name = key, name
    else:
        signer_key = serialization.load_pem_private_key(issuer[1], None)  # type: ignore[assignment]
        issuer_name = x509.load_pem_x509_certificate(issuer[0]).subject
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if server:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    certificate = builder.sign(signer_key, hashes.SHA256())
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_mutual_tls_callers(new_database: Callable[[], str], tmp_path: pathlib.Path) -> None:
    ca, other_ca = issue("ledger test CA", None), issue("someone else's CA", None)
    server_pem = issue("localhost", ca, server=True)
    for name, data in {"ca.pem": ca[0], "server.pem": server_pem[0], "server.key": server_pem[1]}.items():
        (tmp_path / name).write_bytes(data)
    database_url = new_database()
    provision_admin_key(database_url, ADMIN_KEY)
    server = LedgerServer(ServerConfig(
        listen="127.0.0.1:0", database_url=database_url, tls_cert=str(tmp_path / "server.pem"),
        tls_key=str(tmp_path / "server.key"), tls_client_ca=str(tmp_path / "ca.pem"))).start()
    target = f"localhost:{server.port}"

    def channel(client: Pem | None) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca[0], private_key=client[1] if client else None,
            certificate_chain=client[0] if client else None)
        return grpc.secure_channel(target, credentials)

    try:
        with channel(issue("operator-laptop", ca)) as admin_channel:
            admin = ledger_pb2_grpc.LedgerStub(admin_channel)
            bearer = [("authorization", f"Bearer {ADMIN_KEY}")]
            admin.CreateCertificateCaller(admin_pb2.CreateCertificateCallerRequest(
                request_id=rid(), name="payments", certificate_subject="payments-service",
                scopes=["accounts:read"]), metadata=bearer)  # a bearer key over TLS
            with pytest.raises(grpc.RpcError) as raised:
                admin.ListAssets(pb.ListAssetsRequest())
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with channel(issue("payments-service", ca)) as payments:
            ledger_pb2_grpc.LedgerStub(payments).ListAssets(pb.ListAssetsRequest(), timeout=5)
            with pytest.raises(grpc.RpcError) as raised:
                ledger_pb2_grpc.LedgerStub(payments).CreateAsset(
                    pb.CreateAssetRequest(request_id=rid(), code="TLSX", scale=2), timeout=5)
            assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with channel(issue("unknown-service", ca)) as unknown:
            with pytest.raises(grpc.RpcError) as raised:
                ledger_pb2_grpc.LedgerStub(unknown).ListAssets(pb.ListAssetsRequest(), timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with channel(issue("payments-service", other_ca)) as forged:
            with pytest.raises(grpc.RpcError) as raised:
                ledger_pb2_grpc.LedgerStub(forged).ListAssets(pb.ListAssetsRequest(), timeout=5)
            assert raised.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    finally:
        server.stop(grace_s=1)
