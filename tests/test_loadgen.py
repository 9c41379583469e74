"""The benchmarks' lean site and clients (scripts/loadgen.py): what they serve and count must be right, or every
benchmark number built on them is wrong."""
from __future__ import annotations

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import requests
from conftest import LoopbackHTTP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import loadgen  # noqa: E402


def test_the_site_serves_its_directory_only(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.png").write_bytes(b"\x89PNG-bytes")
    (tmp_path / "secret.txt").write_text("outside")
    site, address = loadgen.start_site(tmp_path / "site")
    try:
        with requests.Session() as s:  # keep-alive: several requests on one connection
            r = s.get(f"http://{address}/a.png")
            assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, b"\x89PNG-bytes", "image/png")
            assert s.get(f"http://{address}/missing.png").status_code == 404
            assert s.get(f"http://{address}/a.png", headers={"Connection": "close"}).content == b"\x89PNG-bytes"
        host, port = address.split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 404")
    finally:
        site.shutdown()


def test_drive_counts_every_answer_and_its_errors():
    seen = []

    class Service(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["images"][0]
            seen.append(spec["url"])
            result = {"error": {"code": "x"}} if spec["url"].endswith("bad") else {"alt": "a", "cached": False}
            body = json.dumps({"results": [result]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if len(seen) % 5 == 0:
                self.send_header("Connection", "close")  # the client must reconnect and go on
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with LoopbackHTTP(Service) as http:
        urls = [f"http://img.test/{i}" for i in range(23)] + ["http://img.test/bad"]
        out = loadgen.drive(http.url, urls, clients=4)
    assert sorted(seen) == sorted(urls)
    assert (out["requests"], out["ok"], out["cached"]) == (24, 23, 0)
    assert out["images_per_s"] > 0 and out["p50_ms"] <= out["p95_ms"]
