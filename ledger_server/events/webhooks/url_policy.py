"""Which webhook URLs and addresses the dispatcher may call (server-side request forgery defence).

Endpoint URLs are chosen by API callers, and the dispatcher runs inside the platform's network, so
a URL must never reach the cloud metadata service, link-local or loopback services, or (unless
allowed) private networks. URLs are checked when an endpoint is created or updated (syntax, scheme,
literal addresses and well-known internal names) and again at every attempt, against every address
the host resolves to at that moment; the request then goes to the checked address itself, so a
DNS answer that changes between the check and the connection (rebinding) cannot bypass it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from dataclasses import dataclass

URL_CHARS_MAX = 2048
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefusedError(Exception):
    """The URL or the address it resolves to is not allowed. `reason`: an ErrorReason name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False  # development and tests: receivers on 127.0.0.1 / ::1
    allow_private: bool = False   # RFC 1918, unique-local and shared address space
    allow_http: bool = False      # plain http:// (payloads are signed, not encrypted)

    @classmethod
    def from_env(cls) -> UrlPolicy:
        def flag(name: str) -> bool:
            return os.environ.get(name, "").lower() in ("1", "true", "yes")

        return cls(
            allow_loopback=flag("LEDGER_WEBHOOKS_ALLOW_LOOPBACK"),
            allow_private=flag("LEDGER_WEBHOOKS_ALLOW_PRIVATE"),
            allow_http=flag("LEDGER_WEBHOOKS_ALLOW_HTTP"),
        )

    def check_url(self, url: str) -> urllib.parse.SplitResult:
        """Syntax, scheme and what can be known without DNS; raises UrlRefusedError."""
        if not 1 <= len(url) <= URL_CHARS_MAX or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            raise UrlRefusedError("INVALID_URL", f"url must be 1..{URL_CHARS_MAX} printable characters without spaces")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise UrlRefusedError("INVALID_URL", f"url is not valid: {error}") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UrlRefusedError("INVALID_URL", "url must be an absolute https:// URL")
        if parts.scheme == "http" and not self.allow_http:
            raise UrlRefusedError("URL_NOT_ALLOWED", "url must use https")
        if parts.username is not None or parts.password is not None:
            raise UrlRefusedError("INVALID_URL", "url must not carry credentials")
        if port == 0:
            raise UrlRefusedError("INVALID_URL", "url port must not be 0")
        host = parts.hostname.rstrip(".").lower()
        if host in METADATA_HOSTS:
            raise UrlRefusedError("URL_NOT_ALLOWED", "url points at a cloud metadata service")
        if host == "localhost" or host.endswith(".localhost"):
            self.check_address(ipaddress.ip_address("127.0.0.1"))
        literal = _literal_address(host)
        if literal is not None:
            self.check_address(literal)
        return parts

    def check_address(self, address: IPAddress) -> None:
        """Raise UrlRefusedError unless the dispatcher may connect to this address."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            raise UrlRefusedError("URL_NOT_ALLOWED", f"{address} is a cloud metadata address")
        if address.is_loopback:
            if self.allow_loopback:
                return
            raise UrlRefusedError("URL_NOT_ALLOWED", f"{address} is a loopback address")
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise UrlRefusedError("URL_NOT_ALLOWED", f"{address} is a link-local, multicast or reserved address")
        if address.is_private or address in SHARED_ADDRESS_SPACE:
            if self.allow_private:
                return
            raise UrlRefusedError("URL_NOT_ALLOWED", f"{address} is a private address")
        if not address.is_global:
            raise UrlRefusedError("URL_NOT_ALLOWED", f"{address} is not a public address")

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each checked; raises UrlRefusedError if any is forbidden (a host that
        resolves to one public and one internal address is refused: the resolver picks the order)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise ConnectionError(f"cannot resolve {host}: {error}") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            self.check_address(address)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ConnectionError(f"{host} has no address")
        return addresses


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    # Legacy IPv4 spellings (decimal, octal, hex, short forms) that resolvers still accept.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None
