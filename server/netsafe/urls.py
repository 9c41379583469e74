"""Which URLs may be fetched at all, and how their host names are spelled on the wire.

Only ``http``/``https`` URLs without user-info are accepted; ``\\``, whitespace and control characters are refused
because URL parsers disagree about them (``http://a@127.0.0.1@example.com/`` tricks). Literal hosts in every legacy
IPv4 notation (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are normalised with ``inet_aton`` semantics,
so the address checked is the address the OS would use.

Host names are encoded once, by :func:`encode_host`, for every fetch and for the audit's URL spelling: UTS-46
non-transitional, as browsers do, so ``faß.de`` is ``xn--fa-hia.de`` everywhere (Python's ``idna`` codec is IDNA
2003 and says ``fass.de``, another domain).
"""
from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
import urllib.parse

import idna

from .errors import FetchError
from .limits import MAX_URL_LENGTH

DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def encode_host(name: str) -> str:
    """The ASCII spelling of a host name: an ASCII name lower-cased as it is (``my_host.local`` stays), anything
    else by UTS-46 non-transitional processing (full-width letters and ideographic full stops mapped, ``ß`` kept).
    Raises ValueError for a name UTS-46 refuses."""
    if name.isascii():
        return name.lower()
    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as e:
        raise ValueError(f"not a valid host name ({e})") from None


def parse_host(host: str) -> tuple[str, Address | None]:
    """(ASCII host name, IP address if the host is a literal). Legacy IPv4 notations are normalised the way
    ``inet_aton`` (and so ``getaddrinfo``) reads them; a host whose last label is a number must be a valid IPv4
    address (as in the WHATWG URL standard), so ``1.2.3.4.5`` is refused rather than sent to DNS."""
    h = str(host or "")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h:
        raise FetchError("invalid_host", "the URL has no host")
    if any(not c.isprintable() or c.isspace() for c in h) or "%" in h or "\\" in h:
        raise FetchError("invalid_host", "the host contains forbidden characters")
    if ":" in h:
        try:
            return str(ipaddress.IPv6Address(h)), ipaddress.IPv6Address(h)
        except ValueError:
            raise FetchError("invalid_host", "the host is not a valid IPv6 address") from None
    if h.endswith("."):
        h = h[:-1]  # the FQDN form "example.com." names the same host
    try:
        name = encode_host(h)
    except ValueError:
        raise FetchError("invalid_host", "the host is not a valid name") from None
    labels = name.split(".")
    if not _HOST_CHARS.fullmatch(name) or any(not label for label in labels) or len(name) > 253:
        raise FetchError("invalid_host", "the host is not a valid name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            raise FetchError("invalid_host", "the host is not a valid IPv4 address") from None
        return str(ip), ip
    return name, None


def check_url(url: str) -> urllib.parse.SplitResult:
    """Syntax-level checks: http/https only, no user-info, a valid host and port. Raises FetchError."""
    if not isinstance(url, str) or not url:
        raise FetchError("invalid_url", "the URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise FetchError("invalid_url", f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c == "\\" or c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Zs") for c in url):
        raise FetchError("invalid_url", "the URL contains whitespace, control characters or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise FetchError("invalid_url", "the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = (scheme + ":") if scheme else "a URL without a scheme"
        raise FetchError("unsupported_scheme", f"only http and https URLs can be fetched, not {shown}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise FetchError("credentials_in_url", "URLs with a user name or password are not fetched")
    hostport = parts.netloc
    if hostport.startswith("["):
        _, _, after = hostport.partition("]")
        if after and not after.startswith(":"):
            raise FetchError("invalid_host", "the host is not a valid IPv6 address")
        raw_port = after[1:] if after else ""
    else:
        raw_port = hostport.partition(":")[2]
    if raw_port and not (raw_port.isascii() and raw_port.isdigit()):
        raise FetchError("invalid_port", "the port is not a number")
    try:
        port = parts.port
    except ValueError:
        raise FetchError("invalid_port", "the port must be between 1 and 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise FetchError("invalid_port", "the port must be between 1 and 65535")
    if not parts.hostname:
        raise FetchError("invalid_host", "the URL has no host")
    parse_host(parts.hostname)
    return parts


def request_target(parts: urllib.parse.SplitResult) -> str:
    """The path and query as sent on the request line: what must be escaped is escaped, nothing else changes."""
    target = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return target


def host_header(parts: urllib.parse.SplitResult, name: str) -> str:
    """``name[:port]`` as the Host header and the URL sent say it (the port only when it is not the default)."""
    port = parts.port
    shown = f"[{name}]" if ":" in name else name
    if port is not None and port != DEFAULT_PORTS[parts.scheme.lower()]:
        shown += f":{port}"
    return shown
