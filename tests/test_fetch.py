"""server/netsafe/fetch.py: SSRF refusals, limits and decoding of fetched images.

Network rule for this file: nothing may leave the machine. Every blocking decision for a non-loopback address is
tested with a stub resolver (or an IP literal) so that the refusal happens before any connect; end-to-end tests
talk only to HTTP(S) servers started here on 127.0.0.1. An autouse guard makes any connect to a non-loopback
address, or any real DNS lookup, fail the test.
"""
from __future__ import annotations

import datetime
import gzip
import io
import ipaddress
import socket
import socketserver
import ssl
import struct
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from server.netsafe import fetch as fetch_mod
from server.netsafe.fetch import (
    FetchError,
    FetchLimits,
    check_url,
    fetch_bytes,
    fetch_image,
    is_public_address,
    resolve_public,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


# ---------------------------------------------------------------------------------------------- network guard

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_violations: list[str] = []


def _require_loopback(sock, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = str(address[0]).split("%")[0]
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        _violations.append(f"connect to {address!r}")
        raise AssertionError(f"test tried to connect to a non-loopback address {address!r}")


def _guarded_connect(self, address):
    _require_loopback(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _require_loopback(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    try:
        if host is not None:
            ipaddress.ip_address(str(host if isinstance(host, str) else host.decode()).split("%")[0])
    except ValueError:
        _violations.append(f"DNS lookup of {host!r}")
        raise AssertionError(f"test tried a real DNS lookup of {host!r}") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def network_guard(monkeypatch):
    _violations.clear()
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield
    assert not _violations, _violations


def stub_resolver(table: dict[str, list[str]]):
    """A getaddrinfo look-alike answering from ``table``; records the names it was asked."""
    calls: list[str] = []

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for a in table[host]:
            if ipaddress.ip_address(a).version == 4:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
            else:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
        return out

    resolve.calls = calls
    return resolve


HOSTILE_NAMES = {
    "intranet.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "multi.test": [PUBLIC_V4, "10.0.0.5"],
    "multi6.test": [PUBLIC_V6, "fd00::1"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "cgnat.test": ["100.64.3.4"],
    "public.test": [PUBLIC_V4],
    "public6.test": [PUBLIC_V6, PUBLIC_V4],
}


# ---------------------------------------------------------------------------------------------- test images

def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(size: int) -> Image.Image:
    return Image.frombytes("RGB", (size, size), bytes((i * 7919 + (i >> 3) * 31) % 256 for i in range(size * size * 3)))


def _png_bomb() -> bytes:
    """A ~70-byte PNG whose header claims 50000x50000 pixels (IHDR patched, CRC fixed)."""
    data = bytearray(_encode(Image.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", 50_000, 50_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


PNG = _encode(Image.new("RGB", (40, 30), (10, 200, 30)), "PNG")
JPEG = _encode(_noise(64), "JPEG", quality=90)
GIF = _encode(Image.new("RGB", (16, 16), (255, 0, 0)), "GIF", save_all=True,
              append_images=[Image.new("RGB", (16, 16), (0, 0, 255))], duration=100, loop=0)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
HTML = b"<!doctype html><html><body>not an image</body></html>"

STATIC = {  # path: (content type, body)
    "/png": ("image/png", PNG),
    "/jpeg": ("image/jpeg", JPEG),
    "/gif": ("image/gif", GIF),
    "/svg": ("image/svg+xml", SVG),
    "/html": ("image/jpeg", HTML),
    "/empty": ("image/png", b""),
    "/truncated.jpg": ("image/jpeg", JPEG[: len(JPEG) // 2]),
    "/bomb.png": ("image/png", _png_bomb()),
}


# ---------------------------------------------------------------------------------------------- loopback servers

class _Handler(BaseHTTPRequestHandler):
    server_version = "loopback-test"
    sys_version = ""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/octet-stream",
              headers: dict | None = None, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        path, _, query = self.path.partition("?")
        params = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        try:
            if path in STATIC:
                ctype, body = STATIC[path]
                self._send(200, body, ctype)
            elif path.startswith("/redirect/"):
                n = int(path.rsplit("/", 1)[1])
                if n > 0:
                    self._send(302, headers={"Location": f"/redirect/{n - 1}"})
                else:
                    self._send(200, PNG, "image/png")
            elif path == "/to":
                self._send(int(params.get("status", 302)), headers={"Location": params["location"]})
            elif path == "/nolocation":
                self._send(302)
            elif path == "/status":
                self._send(int(params["code"]), b"<html>error</html>", "text/html")
            elif path == "/big":  # no Content-Length: only the streaming cap can stop it
                self._send(200, b"\0" * int(params.get("n", 5000)), length=False)
            elif path == "/liar":  # claims a gigabyte
                self._send(200, b"x" * 10, headers={"Content-Length": str(10 ** 9)}, length=False)
            elif path == "/gzip-png":
                self._send(200, gzip.compress(PNG), "image/png", headers={"Content-Encoding": "gzip"})
            elif path == "/gzip-bomb":
                self._send(200, gzip.compress(b"\0" * 5_000_000), "image/png", headers={"Content-Encoding": "gzip"})
            elif path == "/br":
                self._send(200, b"\x0b\x02\x80hello\x03", "image/png", headers={"Content-Encoding": "br"})
            elif path == "/drip":  # one byte every 0.2 s, forever-ish
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                for _ in range(50):
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif path == "/drip-headers":
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                for _ in range(50):
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif path == "/stall":
                time.sleep(1.0)
                self._send(200, PNG, "image/png")
            else:
                self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:  # skip getfqdn(): no reverse lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        pass


class Loopback:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.seen = []
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True,
                                                        do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if ssl_context else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list:
        return self.httpd.seen

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def limits(self, **kw) -> FetchLimits:
        return FetchLimits(test_allow_loopback=(f"127.0.0.1:{self.port}",), **kw)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def srv():
    server = Loopback()
    yield server
    server.close()


NO_DNS = stub_resolver({})  # literal-IP URLs never need a resolver


# ---------------------------------------------------------------------------------------------- SSRF suite

SSRF_CASES = [
    # loopback in every notation
    ("http://127.0.0.1/", "blocked_address"),
    ("http://2130706433/", "blocked_address"),
    ("http://0177.0.0.1/", "blocked_address"),
    ("http://0x7f000001/", "blocked_address"),
    ("http://0x7f.1/", "blocked_address"),
    ("http://127.1/", "blocked_address"),
    ("http://127.0.0.1./", "blocked_address"),
    ("http://0X7F.0.0.1/", "blocked_address"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "blocked_address"),  # fullwidth digits
    ("http://127\u30020\u30020\u30021/", "blocked_address"),                   # ideographic full stops
    ("http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/", "blocked_address"),  # circled "localhost"
    ("https://127.0.0.1:443/x.png", "blocked_address"),
    ("http://localhost/", "blocked_address"),
    ("http://LOCALHOST./", "blocked_address"),
    ("http://img.localhost/", "blocked_address"),
    ("http://intranet.test/", "blocked_address"),       # resolves (stub) to 127.0.0.1
    ("http://[::1]/", "blocked_address"),
    ("http://[0:0:0:0:0:0:0:1]/", "blocked_address"),
    ("http://[::ffff:127.0.0.1]/", "blocked_address"),
    ("http://[::ffff:7f00:1]/", "blocked_address"),
    ("http://[::127.0.0.1]/", "blocked_address"),        # IPv4-compatible
    ("http://[::ffff:0:7f00:1]/", "blocked_address"),    # IPv4-translated
    ("http://[64:ff9b::7f00:1]/", "blocked_address"),    # NAT64 of 127.0.0.1
    ("http://[2002:7f00:1::]/", "blocked_address"),      # 6to4 of 127.0.0.1
    # private, link-local, metadata, CGNAT, special
    ("http://10.1/", "blocked_address"),
    ("http://10.0.0.1/", "blocked_address"),
    ("http://172.16.0.1/", "blocked_address"),
    ("http://172.31.255.255/", "blocked_address"),
    ("http://192.168.1.1/", "blocked_address"),
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    ("http://0xa9fea9fe/", "blocked_address"),           # 169.254.169.254 in hex
    ("http://metadata.test/computeMetadata/v1/", "blocked_address"),
    ("http://[::ffff:169.254.169.254]/", "blocked_address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "blocked_address"),  # NAT64 of the metadata address
    ("http://[2002:a9fe:a9fe::1]/", "blocked_address"),  # 6to4 of the metadata address
    ("http://[2002:a00:1::]/", "blocked_address"),       # 6to4 of 10.0.0.1
    ("http://multi.test/", "blocked_address"),           # one public, one private address
    ("http://multi6.test/", "blocked_address"),
    ("http://mapped.test/", "blocked_address"),
    ("http://cgnat.test/", "blocked_address"),
    ("http://100.64.0.1/", "blocked_address"),
    ("http://0.0.0.0/", "blocked_address"),
    ("http://0/", "blocked_address"),
    ("http://[::]/", "blocked_address"),
    ("http://224.0.0.1/", "blocked_address"),
    ("http://255.255.255.255/", "blocked_address"),
    ("http://240.0.0.1/", "blocked_address"),
    ("http://192.0.2.1/", "blocked_address"),
    ("http://198.18.0.1/", "blocked_address"),
    ("http://[fc00::1]/", "blocked_address"),
    ("http://[fd12:3456::1]/", "blocked_address"),
    ("http://[fe80::1]/", "blocked_address"),
    ("http://[fec0::1]/", "blocked_address"),
    ("http://[ff02::1]/", "blocked_address"),
    ("http://[2001::1]/", "blocked_address"),            # Teredo
    ("http://[2001:db8::1]/", "blocked_address"),
    # user-info tricks
    ("http://user:pass@example.com/", "credentials_in_url"),
    ("http://a@127.0.0.1@example.com/", "credentials_in_url"),
    ("http://example.com@127.0.0.1/", "credentials_in_url"),
    ("http://:@example.com/", "credentials_in_url"),
    ("http://127.0.0.1:80@example.com/", "credentials_in_url"),
    ("http://evil.test\\@127.0.0.1/", "invalid_url"),
    # schemes
    ("file:///etc/passwd", "unsupported_scheme"),
    ("ftp://example.com/a.png", "unsupported_scheme"),
    ("gopher://127.0.0.1:6379/_INFO", "unsupported_scheme"),
    ("javascript:alert(1)", "unsupported_scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", "unsupported_scheme"),
    ("//example.com/a.png", "unsupported_scheme"),
    # ports and malformed hosts
    ("http://example.com:0/", "invalid_port"),
    ("http://example.com:65536/", "invalid_port"),
    ("http://example.com:http/", "invalid_port"),
    ("http://example.com:+80/", "invalid_port"),
    ("http:///a.png", "invalid_host"),
    ("http://", "invalid_host"),
    ("http://%31%32%37.0.0.1/", "invalid_host"),
    ("http://[::1%25lo]/", "invalid_host"),
    ("http://1.2.3.4.5/", "invalid_host"),
    ("http://08.0.0.1/", "invalid_host"),
    ("http://example..com/", "invalid_host"),
    ("http://127.0.0.1 .example.com/", "invalid_url"),
    ("http://127.0.0.1\t/", "invalid_url"),
    ("", "invalid_url"),
]


@pytest.mark.parametrize("url,code", SSRF_CASES, ids=[c[0][:60] or "empty" for c in SSRF_CASES])
def test_hostile_url_is_refused_before_any_connection(url, code):
    resolver = stub_resolver(HOSTILE_NAMES)
    with pytest.raises(FetchError) as info:
        fetch_bytes(url, FetchLimits(total_timeout=2), resolver=resolver)
    err = info.value
    assert err.code == code, (url, err.code, err.message)
    assert err.status == (403 if code == "blocked_address" else 400)
    assert err.message and "Traceback" not in err.message
    assert err.__cause__ is None


def test_ssrf_suite_is_large_enough():
    assert len(SSRF_CASES) >= 30


def test_literal_addresses_never_reach_the_resolver():
    resolver = stub_resolver(HOSTILE_NAMES)
    for host in ("2130706433", "0x7f.1", "::1", "[::ffff:7f00:1]", "10.1"):
        with pytest.raises(FetchError):
            resolve_public(host, 80, resolver)
    assert resolver.calls == []


def test_what_needs_no_dns_is_refused_without_it():
    """check_public_without_dns (the service's refusal before its cache) refuses every hostile URL a public-only
    fetch refuses without a DNS lookup, with the fetch's own error; only names that DNS must judge pass."""
    from server.netsafe import check_public_without_dns
    from server.netsafe.addresses import needs_dns
    from server.netsafe.urls import parse_host

    for url, code in SSRF_CASES:
        try:
            check_public_without_dns(url)
        except FetchError as e:
            assert e.code == code, (url, e.code, e.message)
        else:
            assert needs_dns(*parse_host(urllib.parse.urlsplit(url).hostname)), url
    assert check_public_without_dns("http://public.test:8080/a.png").port == 8080
    with pytest.raises(FetchError) as info:
        check_public_without_dns(f"http://{PUBLIC_V4}:8080/", FetchLimits(allowed_ports=frozenset({80, 443})))
    assert info.value.code == "port_not_allowed"


def test_blocked_message_does_not_reveal_the_resolved_address():
    with pytest.raises(FetchError) as info:
        resolve_public("multi.test", 80, stub_resolver(HOSTILE_NAMES))
    assert "10.0.0.5" not in info.value.message and info.value.code == "blocked_address"


def test_public_address_passes_without_connecting():
    resolver = stub_resolver(HOSTILE_NAMES)
    assert resolve_public("public.test", 443, resolver) == [ipaddress.ip_address(PUBLIC_V4)]
    assert resolve_public("public6.test", 80, resolver) == [ipaddress.ip_address(PUBLIC_V6),
                                                            ipaddress.ip_address(PUBLIC_V4)]
    assert resolve_public("Public.Test.", 80, resolver)[0] == ipaddress.ip_address(PUBLIC_V4)
    assert resolve_public(PUBLIC_V4, 80, resolver) == [ipaddress.ip_address(PUBLIC_V4)]
    assert resolve_public("1572395042", 80, resolver) == [ipaddress.ip_address(PUBLIC_V4)]  # decimal form


def test_dns_failure_is_a_client_error():
    with pytest.raises(FetchError) as info:
        fetch_bytes("http://no-such-host.test/a.png", resolver=stub_resolver({}))
    assert (info.value.code, info.value.status) == ("dns_failure", 400)


def test_slow_dns_counts_against_the_deadline():
    def slow(host, port, *a, **kw):
        time.sleep(1.5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port))]

    t0 = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes("http://slow-dns.test/", FetchLimits(total_timeout=0.4), resolver=slow)
    assert (info.value.code, info.value.status) == ("dns_timeout", 504)
    assert time.monotonic() - t0 < 1.2


def test_allowed_ports_restricts_ports():
    limits = FetchLimits(allowed_ports=frozenset({80, 443}))
    resolver = stub_resolver(HOSTILE_NAMES)
    assert resolve_public("public.test", 443, resolver, limits)
    with pytest.raises(FetchError) as info:
        resolve_public("public.test", 8080, resolver, limits)
    assert (info.value.code, info.value.status) == ("port_not_allowed", 403)


# ---------------------------------------------------------------------------------------------- address ranges

ADDRESS_CASES = [
    (PUBLIC_V4, True), ("8.8.8.8", True), ("1.1.1.1", True), (PUBLIC_V6, True), ("2001:4860:4860::8888", True),
    ("64:ff9b::5db8:d822", True),            # NAT64 of a public address
    ("2002:5db8:d822::1", True),             # 6to4 of a public address
    ("127.0.0.1", False), ("127.255.255.254", False), ("10.0.0.1", False), ("10.255.255.255", False),
    ("172.16.0.1", False), ("172.31.255.255", False), ("192.168.0.1", False), ("169.254.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("100.127.255.255", False), ("0.0.0.0", False),
    ("0.1.2.3", False), ("224.0.0.1", False), ("239.255.255.250", False), ("240.0.0.1", False),
    ("255.255.255.255", False), ("192.0.0.1", False), ("192.0.2.1", False), ("198.51.100.1", False),
    ("203.0.113.1", False), ("198.18.0.1", False), ("192.88.99.1", False),
    ("::", False), ("::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("::ffff:93.184.216.34", False),         # mapped: refused whatever it embeds
    ("::127.0.0.1", False), ("::8.8.8.8", False),   # IPv4-compatible
    ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b:1::1", False),
    ("2002:7f00:1::", False), ("2002:a00:1::1", False), ("2002:c0a8:101::1", False),
    ("2001::1", False), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),   # Teredo
    ("2001:db8::1", False), ("3fff::1", False), ("100::1", False), ("5f00::1", False),
    ("fc00::1", False), ("fd00::1", False), ("fe80::1", False), ("febf::1", False), ("fec0::1", False),
    ("ff02::1", False), ("ff0e::1", False), ("4000::1", False),
    ("not an address", False),
]


@pytest.mark.parametrize("address,public", ADDRESS_CASES)
def test_is_public_address_ranges(address, public):
    assert is_public_address(address) is public
    if address != "not an address":
        assert is_public_address(ipaddress.ip_address(address)) is public


# ---------------------------------------------------------------------------------------------- check_url / limits

def test_check_url_accepts_ordinary_urls():
    parts = check_url("HTTPS://Images.Example.COM:8443/a%20b/c.png?size=2#frag")
    assert (parts.scheme.lower(), parts.hostname, parts.port, parts.path) == \
        ("https", "images.example.com", 8443, "/a%20b/c.png")
    assert check_url("http://[2606:2800:220:1::1]/x").hostname == "2606:2800:220:1::1"
    assert check_url("http://bücher.example/a.png").hostname == "bücher.example"


@pytest.mark.parametrize("entry", ["10.0.0.1:80", "169.254.169.254:80", "localhost:80", "127.0.0.2:80",
                                   "127.0.0.1:0", "127.0.0.1", "::1:80"])
def test_allow_list_only_takes_exact_loopback_entries(entry):
    with pytest.raises(ValueError):
        FetchLimits(test_allow_loopback=(entry,))


def test_allow_list_is_exact_per_port():
    limits = FetchLimits(test_allow_loopback=("127.0.0.1:8080", "[::1]:8081"))
    assert resolve_public("127.0.0.1", 8080, NO_DNS, limits) == [ipaddress.ip_address("127.0.0.1")]
    assert resolve_public("[::1]", 8081, NO_DNS, limits) == [ipaddress.ip_address("::1")]
    for host, port in (("127.0.0.1", 8081), ("127.0.0.2", 8080), ("::1", 8080), ("10.0.0.1", 8080),
                       ("localhost", 8080)):
        with pytest.raises(FetchError) as info:
            resolve_public(host, port, NO_DNS, limits)
        assert info.value.code == "blocked_address"


# ---------------------------------------------------------------------------------------------- end to end

def test_png_decodes(srv):
    image, data = fetch_image(srv.url("/png"), srv.limits(), NO_DNS)
    assert data == PNG
    assert (image.mode, image.size, image.getpixel((5, 5))) == ("RGB", (40, 30), (10, 200, 30))


def test_jpeg_decodes_and_bytes_are_returned(srv):
    body, final = fetch_bytes(srv.url("/jpeg"), srv.limits(), NO_DNS)
    assert body == JPEG and final == srv.url("/jpeg")
    image, data = fetch_image(srv.url("/jpeg"), srv.limits(), NO_DNS)
    assert data == JPEG and image.mode == "RGB" and image.size == (64, 64)


def test_gif_first_frame(srv):
    image, _ = fetch_image(srv.url("/gif"), srv.limits(), NO_DNS)
    r, g, b = image.getpixel((8, 8))
    assert r > 200 and b < 50


def test_request_headers(srv):
    fetch_bytes(srv.url("/png?x=1"), srv.limits(), NO_DNS, user_agent="unit-test-agent")
    path, headers = srv.seen[-1]
    assert path == "/png?x=1"
    assert headers["host"] == f"127.0.0.1:{srv.port}"
    assert headers["user-agent"] == "unit-test-agent"
    assert headers["accept-encoding"] == "identity"
    assert "authorization" not in headers and "cookie" not in headers


def test_name_is_resolved_once_and_the_checked_address_is_used(srv):
    """DNS rebinding: the first answer is checked and used; a second lookup would get a private address."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    calls = []

    def rebinding(host, port, *a, **kw):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in next(answers)]

    body, _ = fetch_bytes(srv.url("/png", host="img.test"), srv.limits(), rebinding)
    assert body == PNG and calls == ["img.test"]
    assert srv.seen[-1][1]["host"] == f"img.test:{srv.port}"  # original name in the Host header


def test_environment_proxy_is_ignored(srv, monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://10.9.9.9:3128")
    body, _ = fetch_bytes(srv.url("/png"), srv.limits(), NO_DNS)
    assert body == PNG  # the guard would have failed a connect to the proxy


def test_loopback_port_not_in_allow_list_is_refused(srv):
    before = len(srv.seen)
    for limits in (FetchLimits(), FetchLimits(test_allow_loopback=(f"127.0.0.1:{srv.port + 1}",))):
        with pytest.raises(FetchError) as info:
            fetch_bytes(srv.url("/png"), limits, NO_DNS)
        assert info.value.code == "blocked_address"
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/png"), srv.limits(allowed_ports=frozenset({80, 443})), NO_DNS)
    assert info.value.code == "port_not_allowed"
    assert len(srv.seen) == before  # the server never saw a request


@pytest.mark.parametrize("path,code,status", [
    ("/truncated.jpg", "corrupt_image", 422),
    ("/bomb.png", "too_many_pixels", 413),
    ("/html", "unsupported_format", 422),
    ("/svg", "unsupported_format", 422),
    ("/empty", "empty", 422),
])
def test_bad_images_are_refused(srv, path, code, status):
    with pytest.raises(FetchError) as info:
        fetch_image(srv.url(path), srv.limits(), NO_DNS)
    assert (info.value.code, info.value.status) == (code, status)
    if path == "/svg":
        assert "SVG" in info.value.message
    if path == "/html":
        assert "HTML" in info.value.message


def test_bomb_is_small_on_the_wire():
    assert len(STATIC["/bomb.png"][1]) < 200


def test_max_pixels_is_applied(srv):
    with pytest.raises(FetchError) as info:
        fetch_image(srv.url("/png"), srv.limits(max_pixels=1000), NO_DNS)
    assert (info.value.code, info.value.status) == ("too_many_pixels", 413)


def test_streamed_body_over_the_cap(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/big?n=5000"), srv.limits(max_bytes=1000), NO_DNS)
    assert (info.value.code, info.value.status) == ("too_large", 413)
    body, _ = fetch_bytes(srv.url("/big?n=1000"), srv.limits(max_bytes=1000), NO_DNS)
    assert len(body) == 1000  # exactly at the cap is fine


def test_content_length_over_the_cap_is_refused_early(srv):
    t0 = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/liar"), srv.limits(), NO_DNS)
    assert (info.value.code, info.value.status) == ("too_large", 413)
    assert "Content-Length" in info.value.message and time.monotonic() - t0 < 1


def test_gzip_body_is_inflated(srv):
    image, data = fetch_image(srv.url("/gzip-png"), srv.limits(), NO_DNS)
    assert data == PNG and image.size == (40, 30)


def test_gzip_bomb_is_capped(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/gzip-bomb"), srv.limits(max_bytes=100_000), NO_DNS)
    assert (info.value.code, info.value.status) == ("too_large", 413)


def test_unknown_encoding_is_refused(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/br"), srv.limits(), NO_DNS)
    assert info.value.code == "unsupported_encoding"


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_slow_drip_is_cut_off_at_the_deadline(srv, path):
    t0 = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url(path), srv.limits(total_timeout=1.0), NO_DNS)
    elapsed = time.monotonic() - t0
    assert (info.value.code, info.value.status) == ("deadline_exceeded", 504)
    assert 0.9 <= elapsed < 2.0


def test_one_watchdog_thread_cuts_every_fetch_at_its_own_deadline(srv):
    """Deadlines share one watchdog thread (no timer thread per fetch): a drip with a short deadline is cut at it
    even while a fetch with a longer one, registered first, is still running; and many fetches leave one thread."""
    import threading

    slow_codes = []

    def slow_fetch():
        try:
            fetch_bytes(srv.url("/drip"), srv.limits(total_timeout=3.0), NO_DNS)
        except FetchError as e:
            slow_codes.append((e.code, time.monotonic() - t_slow))

    t_slow = time.monotonic()
    slow = threading.Thread(target=slow_fetch)
    slow.start()
    time.sleep(0.2)  # the 3 s deadline is the one the watchdog sleeps towards now
    t0 = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/drip-headers"), srv.limits(total_timeout=0.5), NO_DNS)
    assert info.value.code == "deadline_exceeded" and 0.4 <= time.monotonic() - t0 < 1.5
    slow.join()
    assert slow_codes and slow_codes[0][0] == "deadline_exceeded" and 2.9 <= slow_codes[0][1] < 4.5
    for _ in range(20):
        fetch_bytes(srv.url("/png"), srv.limits(), NO_DNS)
    names = [t.name for t in threading.enumerate()]
    assert names.count("fetch-deadlines") == 1
    assert not any(isinstance(t, threading.Timer) for t in threading.enumerate())


def test_an_ip_literal_is_not_sent_to_the_resolver_pool(srv, monkeypatch):
    """Nothing to look up, so no handover to a resolver thread (one wake-up less per image under load)."""
    from server.netsafe import fetch

    class NoPool:
        def submit(self, *a, **kw):
            raise AssertionError("an IP literal went to the DNS pool")

    monkeypatch.setattr(fetch, "_DNS_POOL", NoPool())
    body, _ = fetch_bytes(srv.url("/png"), srv.limits(), NO_DNS)
    assert body == PNG


def test_silent_server_hits_the_read_timeout(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/stall"), srv.limits(read_timeout=0.3), NO_DNS)
    assert (info.value.code, info.value.status) == ("read_timeout", 504)


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(FetchError) as info:
        fetch_bytes(f"http://127.0.0.1:{port}/", FetchLimits(test_allow_loopback=(f"127.0.0.1:{port}",)), NO_DNS)
    assert (info.value.code, info.value.status) == ("connect_failed", 502)


def test_connect_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue until a connect hangs
            c = socket.socket()
            c.settimeout(0.2)
            fillers.append(c)
            try:
                c.connect(("127.0.0.1", port))
            except (TimeoutError, socket.timeout):
                break
        else:
            pytest.skip("this kernel does not stall connects on a full accept queue")
        with pytest.raises(FetchError) as info:
            fetch_bytes(f"http://127.0.0.1:{port}/",
                        FetchLimits(connect_timeout=0.3, test_allow_loopback=(f"127.0.0.1:{port}",)), NO_DNS)
        assert (info.value.code, info.value.status) == ("connect_timeout", 504)
    finally:
        for c in fillers:
            c.close()
        listener.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_within_the_allowed_server(srv, status):
    url = srv.url("/to?" + urllib.parse.urlencode({"location": "/png", "status": status}))
    body, final = fetch_bytes(url, srv.limits(), NO_DNS)
    assert body == PNG and final == srv.url("/png")


def test_redirect_chain_limit(srv):
    body, final = fetch_bytes(srv.url("/redirect/3"), srv.limits(), NO_DNS)
    assert body == PNG and final == srv.url("/redirect/0")
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/redirect/4"), srv.limits(), NO_DNS)
    assert (info.value.code, info.value.status) == ("too_many_redirects", 502)
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/redirect/1"), srv.limits(max_redirects=0), NO_DNS)
    assert info.value.code == "too_many_redirects"


@pytest.mark.parametrize("location,code", [
    ("http://10.0.0.1/", "blocked_address"),
    ("http://192.168.0.10:8080/admin", "blocked_address"),
    ("http://169.254.169.254/latest/meta-data/iam/", "blocked_address"),
    ("http://[::ffff:169.254.169.254]/", "blocked_address"),
    ("http://metadata.test/", "blocked_address"),
    ("http://internal.test/", "blocked_address"),            # a name for 10.0.0.7
    ("http://127.0.0.1:{other}/png", "blocked_address"),     # another loopback port
    ("http://localhost:{port}/png", "blocked_address"),
    ("file:///etc/passwd", "unsupported_scheme"),
    ("gopher://127.0.0.1:{port}/_x", "unsupported_scheme"),
    ("http://user:pw@127.0.0.1:{port}/png", "credentials_in_url"),
])
def test_redirect_to_a_refused_url(srv, location, code):
    location = location.format(port=srv.port, other=srv.port + 1)
    before = len(srv.seen)
    url = srv.url("/to?" + urllib.parse.urlencode({"location": location}))
    resolver = stub_resolver({**HOSTILE_NAMES, "internal.test": ["10.0.0.7"]})
    with pytest.raises(FetchError) as info:
        fetch_bytes(url, srv.limits(), resolver)
    assert info.value.code == code
    assert "redirect" in info.value.message
    assert len(srv.seen) == before + 1  # only the first hop reached the server


def test_redirect_without_location(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/nolocation"), srv.limits(), NO_DNS)
    assert (info.value.code, info.value.status) == ("bad_redirect", 502)


@pytest.mark.parametrize("code", [404, 500, 403])
def test_upstream_error_status(srv, code):
    with pytest.raises(FetchError) as info:
        fetch_image(srv.url(f"/status?code={code}"), srv.limits(), NO_DNS)
    assert (info.value.code, info.value.status) == ("upstream_status", 502)
    assert str(code) in info.value.message


def test_errors_carry_no_traceback(srv):
    with pytest.raises(FetchError) as info:
        fetch_bytes(srv.url("/stall"), srv.limits(read_timeout=0.2), NO_DNS)
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert str(err) == err.message and "Traceback" not in repr(err)


# ---------------------------------------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A local CA, a certificate for img.test, and an HTTPS server that records the SNI names it is sent."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject_cn, issuer_name, key, signer, ca: bool, san: str | None = None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                            critical=True)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alt-text test CA")])
    ca_cert = cert("alt-text test CA", ca_name, ca_key, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("img.test", ca_name, leaf_key, ca_key, ca=False, san="img.test")

    d = tmp_path_factory.mktemp("tls")
    (d / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.key").write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    sni: list = []
    ctx.sni_callback = lambda sslobj, name, context: sni.append(name)
    server = Loopback(ctx)
    server.sni = sni
    server.ca = str(d / "ca.pem")
    yield server
    server.close()


def test_https_uses_original_name_for_sni_and_verification(tls, monkeypatch):
    monkeypatch.setattr(fetch_mod, "_CA_BUNDLE", tls.ca)
    resolver = stub_resolver({"img.test": ["127.0.0.1"]})
    image, data = fetch_image(tls.url("/png", host="img.test"), tls.limits(), resolver)
    assert data == PNG and image.size == (40, 30)
    assert tls.sni[-1] == "img.test"
    assert tls.seen[-1][1]["host"] == f"img.test:{tls.port}"
    assert resolver.calls == ["img.test"]


def test_https_untrusted_certificate_is_refused(tls):
    resolver = stub_resolver({"img.test": ["127.0.0.1"]})
    with pytest.raises(FetchError) as info:
        fetch_bytes(tls.url("/png", host="img.test"), tls.limits(), resolver)
    assert (info.value.code, info.value.status) == ("tls_error", 502)
    assert tls.sni[-1] == "img.test"


def test_https_certificate_for_another_name_is_refused(tls, monkeypatch):
    monkeypatch.setattr(fetch_mod, "_CA_BUNDLE", tls.ca)
    resolver = stub_resolver({"other.test": ["127.0.0.1"]})
    with pytest.raises(FetchError) as info:
        fetch_bytes(tls.url("/png", host="other.test"), tls.limits(), resolver)
    assert info.value.code == "tls_error"
    with pytest.raises(FetchError) as info:  # an IP-literal URL is verified against the IP, not the cert's name
        fetch_bytes(tls.url("/png"), tls.limits(), NO_DNS)
    assert info.value.code == "tls_error"
