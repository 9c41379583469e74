"""The one spelling of a crawled URL, used to tell pages apart (and to keep the crawl on its origins)."""
from __future__ import annotations

import re
import string
from urllib.parse import quote, urljoin, urlsplit

from server.netsafe.urls import DEFAULT_PORTS, encode_host

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = _PATH_SAFE + "?"


def _normalize_escapes(text: str, safe: str) -> str:
    """One spelling per URL: escapes of unreserved characters decoded, other escapes upper-cased, and characters
    that must be escaped (spaces, non-ASCII) escaped as UTF-8, as browsers do."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if chr(int(m.group(1), 16)) in _UNRESERVED
                       else "%" + m.group(1).upper(), text)
    return quote(text, safe=safe)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: /a/./b/../c -> /a/c."""
    segments = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg in (".", ".."):
            if seg == ".." and len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _host(hostname: str) -> str | None:
    host = hostname.rstrip(".")
    if not host:
        return None
    if ":" in host:  # IPv6 literal (urlsplit already dropped the brackets)
        return f"[{host}]"
    try:  # the fetch layer's one encoding: UTS-46, as browsers (faß.de is xn--fa-hia.de, not fass.de)
        return encode_host(host)
    except ValueError:
        return None


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The one spelling of an http(s) URL used for de-duplication, or None for anything else.

    Resolved against ``base``; scheme and host lower-cased (the host encoded by UTS-46 as browsers do, by
    :func:`server.netsafe.urls.encode_host`, the fetch layer's own encoding); default port, fragment and empty
    query dropped; dot segments resolved; percent-escapes normalised; query parameters sorted (their order almost
    never matters, and sorting makes ``?a=1&b=2`` and ``?b=2&a=1`` one page). URLs with user-info are refused so
    that no credentials end up in a report.
    """
    if not isinstance(url, str):
        return None
    url = re.sub(r"[\t\n\r]", "", url.strip())  # what browsers strip from href values
    try:
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.username is not None or parts.password is not None:
        return None
    host = _host(parts.hostname or "")
    if host is None:
        return None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path, _PATH_SAFE))
    pieces = sorted(_normalize_escapes(p, _QUERY_SAFE) for p in parts.query.split("&") if p)
    query = "?" + "&".join(pieces) if pieces else ""
    return f"{scheme}://{netloc}{path}{query}"


def origin(url: str) -> str:
    """scheme://host[:port] of a normalised URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
