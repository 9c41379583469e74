"""Which addresses a public-only fetch may reach: globally routable unicast, nothing else.

The host is resolved *once* per hop, and the fetch is refused if *any* resolved address is not public (loopback,
private, link-local/cloud metadata, CGNAT, multicast, reserved, documentation, IPv4-mapped and -compatible IPv6,
NAT64/6to4 with a non-public embedded IPv4, Teredo, ULA, ...): a name with one public and one private address is
refused, since the client library might pick either. The transport then connects to the address checked here.
"""
from __future__ import annotations

import ipaddress
import socket

from .errors import FetchError
from .limits import DEFAULT_LIMITS, FetchLimits, loopback_allow_set
from .urls import DEFAULT_PORTS, Address, check_url, parse_host


def _nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA special-purpose registries, checked explicitly (ipaddress.is_global alone misses multicast, 6to4, ...).
_BLOCKED_V4 = _nets(
    "0.0.0.0/8",        # "this network", includes the unspecified 0.0.0.0
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",    # carrier-grade NAT
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, cloud metadata 169.254.169.254
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",   # deprecated 6to4 relay anycast
    "198.18.0.0/15",    # benchmarking
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, includes broadcast 255.255.255.255
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")       # well-known NAT64 prefix: judged by the embedded IPv4
_SIXTOFOUR = ipaddress.ip_network("2002::/16")      # 6to4: judged by the embedded IPv4
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_BLOCKED_V6 = _nets(
    "::/96",            # unspecified ::, loopback ::1, IPv4-compatible ::a.b.c.d
    "::ffff:0:0/96",    # IPv4-mapped (always refused: no public DNS answer is one)
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments: Teredo 2001::/32, ORCHID, ...
    "2001:db8::/32", "3fff::/20",   # documentation
    "5f00::/16",        # SRv6 SIDs
    "fc00::/7",         # unique local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
)


def is_public_address(ip) -> bool:
    """True only for a globally routable unicast address (str or ipaddress object); anything unparsable is not."""
    if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            ip = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
    if ip.version == 4:
        if any(ip in net for net in _BLOCKED_V4):
            return False
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)
    if ip.scope_id:
        return False
    if ip in _NAT64:
        return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    if ip in _SIXTOFOUR:
        return is_public_address(ip.sixtofour)
    if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _BLOCKED_V6):
        return False
    return ip.is_global and ip.teredo is None and ip.ipv4_mapped is None


def is_localhost_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


def needs_dns(name: str, literal: Address | None) -> bool:
    """Whether judging a host (as :func:`~server.netsafe.urls.parse_host` gives it) needs a DNS lookup: not for an
    IP literal or a ``localhost`` name."""
    return literal is None and not is_localhost_name(name)


def check_public_without_dns(url: str, limits: FetchLimits = DEFAULT_LIMITS):
    """Refuse, before any DNS lookup, what a public-only fetch of ``url`` would refuse without one: a URL
    :func:`~server.netsafe.urls.check_url` refuses, and a host that is an IP literal or a ``localhost`` name
    :func:`resolve_public` refuses (a non-public address, a port ``limits`` do not allow). A host name that only
    DNS can judge passes: the fetch judges it. Returns the URL's parts; raises FetchError."""
    parts = check_url(url)
    name, literal = parse_host(parts.hostname)
    if not needs_dns(name, literal):
        resolve_public(name, parts.port or DEFAULT_PORTS[parts.scheme.lower()], limits=limits)
    return parts


def resolve_public(host: str, port: int, resolver=socket.getaddrinfo,
                   limits: FetchLimits = DEFAULT_LIMITS) -> list[Address]:
    """Resolve ``host`` (once) and return its addresses, refusing if *any* is not public (a name with one public
    and one private address is refused: the client library might pick either). Literal IPs skip the resolver.
    ``resolver`` has ``socket.getaddrinfo``'s signature (tests pass a stub). Raises FetchError."""
    name, literal = parse_host(host)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise FetchError("invalid_port", "the port must be between 1 and 65535")
    if limits.allowed_ports is not None and port not in limits.allowed_ports:
        raise FetchError("port_not_allowed", f"port {port} is not allowed", 403)
    if literal is not None:
        addresses = [literal]
    else:
        if is_localhost_name(name):
            raise FetchError("blocked_address", "localhost is not fetched", 403)
        try:
            infos = resolver(name, port, type=socket.SOCK_STREAM)
        except UnicodeError:
            raise FetchError("invalid_host", "the host is not a valid name") from None
        except OSError:  # socket.gaierror and friends
            raise FetchError("dns_failure", f"the host {name} could not be resolved") from None
        addresses = []
        for family, _type, _proto, _canon, sockaddr in infos or ():
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(str(sockaddr[0]))
            except ValueError:
                raise FetchError("blocked_address", f"the host {name} resolves to an unusable address", 403) from None
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise FetchError("dns_failure", f"the host {name} has no address")
    allowed = loopback_allow_set(limits.test_allow_loopback)
    for ip in addresses:
        if not is_public_address(ip) and (ip, port) not in allowed:
            what = "is" if literal is not None else "resolves to"
            raise FetchError("blocked_address", f"the host {what} a non-public address, which is not fetched", 403)
    return addresses
