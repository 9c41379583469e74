"""One rule each, the same for the service, the CLI and the audit: host names by UTS-46, the redirect limit, and
the byte cap read under a deadline that cuts a trickle mid-chunk. Local HTTP servers on 127.0.0.1 only; the one
name lookup (faß.de) is answered by a stand-in for DNS."""
from __future__ import annotations

import io
import socket
import time
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import LoopbackHTTP
from PIL import Image

from server.audit.crawl import CrawlConfig, Crawler, FetchFailure, Site, normalize_url
from server.audit.suggest import ImageSource
from server.netsafe import MAX_REDIRECTS, OWN_SITE, FetchError, Fetcher, FetchLimits, encode_host, fetch_bytes
from server.netsafe.urls import parse_host


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
PAGE = b'<!doctype html><html><body><a href="/r/3">three</a><a href="/s/4">four</a></body></html>'


class Server:
    """/ links to /r/3 and /s/4; /r/N redirects to /r/N-1 (/s/N to /s/N-1), /r/0 and /s/0 are a PNG; /trickle
    sends a byte every 0.2 s, /silent one byte and then nothing for 3 s; ``hosts`` records the Host headers."""

    def __init__(self):
        self.hosts: list[str] = []
        self.connections: set[int] = set()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                srv.hosts.append(self.headers["Host"])
                srv.connections.add(self.client_address[1])
                path = self.path
                if path == "/":
                    return self._send(200, PAGE, [("Content-Type", "text/html")])
                if path.startswith(("/r/", "/s/")):
                    n = int(path[3:])
                    if n == 0:
                        return self._send(200, PNG, [("Content-Type", "image/png")])
                    return self._send(302, b"", [("Location", f"{path[:3]}{n - 1}")])
                if path in ("/trickle", "/silent"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(15 if path == "/trickle" else 1):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                    time.sleep(3 if path == "/silent" else 0)
                    return
                self._send(404)

        self.http = LoopbackHTTP(Handler)
        self.port, self.root = self.http.port, self.http.url

    def limits(self, **kw) -> FetchLimits:
        return FetchLimits(test_allow_loopback=(f"127.0.0.1:{self.port}",), **kw)

    def close(self):
        self.http.close()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


# --- one host encoding ---------------------------------------------------------------------------------------------

def test_fass_de_is_spelled_the_same_by_every_part(monkeypatch, server):
    assert encode_host("faß.de") == "xn--fa-hia.de"  # Python's IDNA 2003 codec says fass.de: another domain
    assert normalize_url("http://faß.de/") == "http://xn--fa-hia.de/"  # the audit's URLs
    assert parse_host("faß.de") == ("xn--fa-hia.de", None)  # the service's checks
    asked = []

    def resolver(host, port, *a, **kw):  # stands in for DNS: the name is asked, the answer is private
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    with pytest.raises(FetchError) as e:
        fetch_bytes("http://faß.de/x.png", FetchLimits(), resolver)
    assert e.value.code == "blocked_address" and asked == ["xn--fa-hia.de"]

    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",  # urllib3 resolves under OWN_SITE: the stand-in for DNS again
                        lambda host, *a, **kw: real("127.0.0.1" if host == "xn--fa-hia.de" else host, *a, **kw))
    r = Fetcher(policy=OWN_SITE).get(f"http://faß.de:{server.port}/r/0")
    assert r.status == 200 and server.hosts[-1] == f"xn--fa-hia.de:{server.port}"


# --- one redirect rule ---------------------------------------------------------------------------------------------

def test_the_redirect_limit_is_the_same_for_the_service_the_crawl_and_the_suggestions(server):
    assert MAX_REDIRECTS == 3
    ok, over = f"/r/{MAX_REDIRECTS}", f"/s/{MAX_REDIRECTS + 1}"  # two chains: the crawl audits each URL once
    assert fetch_bytes(server.root + ok, server.limits())[0] == PNG  # the service, alt-text url
    with pytest.raises(FetchError) as e:
        fetch_bytes(server.root + over, server.limits())
    assert e.value.code == "too_many_redirects"

    state = Crawler(CrawlConfig(start_url=server.root + "/", timeout=2)).run()  # the crawl
    pages = {p.url.removeprefix(server.root): p for p in state.pages}
    assert pages[ok].status == "not_html" and pages[ok].final_url == server.root + "/r/0"
    assert pages[over].status == "too_many_redirects" and pages[over].error == f"more than {MAX_REDIRECTS} redirects"

    images = ImageSource(Site(CrawlConfig(start_url=server.root + "/")), [server.root], FetchLimits())  # suggestions
    assert images.load(server.root + ok).data == PNG
    with pytest.raises(FetchError) as e:
        images.load(server.root + over)
    assert e.value.code == "too_many_redirects"


# --- one byte cap under one deadline ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/trickle", "/silent"])
def test_the_deadline_cuts_a_body_mid_chunk_under_both_policies(server, path):
    """A server that trickles bytes (or sends one and falls silent for less than the read timeout) is cut at the
    whole-fetch deadline, inside the read that waits on it, not after it."""
    for fetch in (lambda: fetch_bytes(server.root + path, server.limits(total_timeout=1.0)),
                  lambda: Fetcher(policy=OWN_SITE).get(server.root + path, limits=FetchLimits(total_timeout=1.0))):
        t0 = time.monotonic()
        with pytest.raises(FetchError) as e:
            fetch()
        assert e.value.code == "deadline_exceeded" and 0.9 <= time.monotonic() - t0 < 1.6


def test_a_crawled_page_that_trickles_is_a_timeout_at_the_page_deadline(server):
    site = Site(CrawlConfig(start_url=server.root + "/", timeout=1.0))
    t0 = time.monotonic()
    with pytest.raises(FetchFailure) as e:
        site.get(server.root + "/trickle", 5_000_000)
    assert (e.value.kind, e.value.message) == ("timeout", "the page took longer than 1 s to arrive")
    assert time.monotonic() - t0 < 1.6


def test_the_cap_cuts_a_page_and_refuses_an_image(server):
    r = Fetcher(policy=OWN_SITE).get(server.root + "/", truncate=True, limits=FetchLimits(max_bytes=20))
    assert r.truncated and r.body == PAGE[:20]
    with pytest.raises(FetchError) as e:
        fetch_bytes(server.root + "/r/0", server.limits(max_bytes=20))
    assert e.value.code == "too_large"


def test_the_users_own_site_keeps_its_connection_alive(server):
    fetcher = Fetcher(policy=OWN_SITE)
    before = set(server.connections)
    for _ in range(5):
        assert fetcher.get(server.root + "/r/0").body == PNG
    assert len(server.connections - before) == 1
    fetcher.close()
