"""Every limit of fetching, in one place: what the service, the CLI and the audit may fetch, how much of it and for
how long. Callers narrow them per fetch (:class:`FetchLimits` is a frozen dataclass: ``dataclasses.replace``)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# RFC 9110 section 4.1 asks for at least 8000 octets; longer is no URL an image or a page is published under.
MAX_URL_LENGTH = 8192
# One redirect rule for every fetch: a page, a robots.txt, a sitemap, an image on the site or elsewhere.
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10_000_000          # byte cap of a body (raw and inflated)
    connect_timeout: float = 3.0
    read_timeout: float = 5.0            # longest silence between two reads
    total_timeout: float = 10.0          # whole-fetch deadline: slow-drip servers are cut off
    max_redirects: int = MAX_REDIRECTS
    max_pixels: int = 40_000_000
    allowed_ports: frozenset[int] | None = None   # None: any port 1-65535; else only these
    # TEST ONLY: exact "127.0.0.1:PORT" / "[::1]:PORT" entries: that address on that port is let through (also
    # when a name resolves to it); every other non-public address and port stays blocked.
    test_allow_loopback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_allow_loopback", tuple(self.test_allow_loopback))
        if self.allowed_ports is not None:
            object.__setattr__(self, "allowed_ports", frozenset(self.allowed_ports))
        loopback_allow_set(self.test_allow_loopback)  # validates: only loopback entries can ever be allowed


def loopback_allow_set(entries: tuple[str, ...]) -> frozenset[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                                                   int]]:
    allowed = set()
    for entry in entries:
        host, sep, port = str(entry).rpartition(":")
        if not sep or host not in ("127.0.0.1", "[::1]") or not (port.isascii() and port.isdigit()) \
                or not 1 <= int(port) <= 65535:
            raise ValueError(f"test_allow_loopback entries must be '127.0.0.1:PORT' or '[::1]:PORT', not {entry!r}")
        allowed.add((ipaddress.ip_address(host.strip("[]")), int(port)))
    return frozenset(allowed)


DEFAULT_LIMITS = FetchLimits()
