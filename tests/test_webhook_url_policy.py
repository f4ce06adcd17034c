"""Which receiver URLs and addresses the dispatcher refuses (server-side request forgery defence)."""

from __future__ import annotations

import ipaddress

import pytest

from ledger_server.events.webhooks.url_policy import UrlPolicy, UrlRefusedError

STRICT = UrlPolicy()
DEV = UrlPolicy(allow_loopback=True, allow_http=True)


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data",
    "https://[fd00:ec2::254]/",
    "https://100.100.100.200/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://169.254.10.1/hook",
    "https://[fe80::1]/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://[::ffff:169.254.169.254]/",
    "https://2852039166/",        # 169.254.169.254 as one decimal number
    "https://0xa9.0xfe.0xa9.0xfe/",
])
def test_metadata_link_local_and_reserved_addresses_are_always_refused(url: str) -> None:
    for policy in (STRICT, DEV, UrlPolicy(allow_loopback=True, allow_private=True, allow_http=True)):
        with pytest.raises(UrlRefusedError) as refused:
            policy.check_url(url)
        assert refused.value.reason == "URL_NOT_ALLOWED"


@pytest.mark.parametrize("url", ["https://127.0.0.1:8080/", "https://localhost/", "https://[::1]/", "https://127.1/"])
def test_loopback_only_in_development(url: str) -> None:
    with pytest.raises(UrlRefusedError):
        STRICT.check_url(url)
    DEV.check_url(url)


@pytest.mark.parametrize("url", ["https://10.1.2.3/", "https://192.168.0.10/", "https://172.16.5.4/", "https://[fd12::1]/",
                                 "https://100.64.1.1/"])
def test_private_networks_only_when_allowed(url: str) -> None:
    with pytest.raises(UrlRefusedError):
        STRICT.check_url(url)
    UrlPolicy(allow_private=True).check_url(url)


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/", "INVALID_URL"),
    ("example.com/hook", "INVALID_URL"),
    ("https://user:pw@example.com/", "INVALID_URL"),
    ("https://exa mple.com/", "INVALID_URL"),
    ("https://example.com:99999/", "INVALID_URL"),
    ("https://" + "a" * 2100 + ".com/", "INVALID_URL"),
    ("http://example.com/hook", "URL_NOT_ALLOWED"),
])
def test_malformed_or_insecure_urls(url: str, reason: str) -> None:
    with pytest.raises(UrlRefusedError) as refused:
        STRICT.check_url(url)
    assert refused.value.reason == reason


def test_public_addresses_pass() -> None:
    STRICT.check_url("https://hooks.example.com/ledger?x=1")
    STRICT.check_address(ipaddress.ip_address("93.184.216.34"))
    STRICT.check_address(ipaddress.ip_address("2606:2800:220:1::1"))


def test_resolution_refuses_a_name_with_any_internal_address() -> None:
    with pytest.raises(UrlRefusedError):
        STRICT.resolve("localhost", 443)
    assert all(a.is_loopback for a in DEV.resolve("localhost", 443))
