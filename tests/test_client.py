"""server/client.py against a local HTTP server: limits, readiness, batching, and retries of 429/503 that wait as
Retry-After says, up to a cap."""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import LoopbackHTTP

from server.client import DEFAULT_LIMITS, ServiceClient, ServiceError, image_data


class Service:
    """Answers /readyz, /v1/limits and POST /v1/alt-text; ``refusals`` are (status, Retry-After) answered first."""

    def __init__(self, refusals=(), limits=None, ready=True):
        self.refusals = list(refusals)
        self.posts: list[tuple[float, int]] = []  # (time, images) of every POST, refused ones too
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/readyz":
                    self._send(200 if ready else 503, {"model": "m-1", "pipeline": "p-1"} if ready else
                               {"reason": "warming up"})
                elif self.path == "/v1/limits" and limits:
                    self._send(200, limits)
                else:
                    self._send(404, {})

            def do_POST(self):
                images = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["images"]
                svc.posts.append((time.monotonic(), len(images)))
                if svc.refusals:
                    status, retry_after = svc.refusals.pop(0)
                    headers = [("Retry-After", retry_after)] if retry_after is not None else []
                    return self._send(status, {"error": {"code": "busy", "message": "try later"}}, headers)
                self._send(200, {"results": [{"alt": f"image {i}"} for i in range(len(images))]})

        self.http = LoopbackHTTP(Handler)
        self.url = self.http.url

    def close(self):
        self.http.close()


@pytest.fixture
def service(request):
    svc = Service(**getattr(request, "param", {}))
    yield svc
    svc.close()


@pytest.mark.parametrize("service", [{"refusals": [(429, "1"), (503, "1")]}], indirect=True)
def test_429_and_503_are_retried_after_the_time_retry_after_says(service):
    t0 = time.monotonic()
    assert ServiceClient(service.url).describe([{"url": "http://a.example/x.png"}]) == [{"alt": "image 0"}]
    times = [t for t, _ in service.posts]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9 and time.monotonic() - t0 < 5


@pytest.mark.parametrize("service", [{"refusals": [(429, "3600")]}], indirect=True)
def test_a_long_retry_after_is_waited_only_up_to_the_cap(service):
    t0 = time.monotonic()
    ServiceClient(service.url, max_retry_wait=1).describe([{"url": "http://a.example/x.png"}])
    assert len(service.posts) == 2 and 0.9 <= time.monotonic() - t0 < 3


@pytest.mark.parametrize("service", [{"refusals": [(503, "0")] * 10}], indirect=True)
def test_the_client_gives_up_after_its_retries(service):
    with pytest.raises(ServiceError) as e:
        ServiceClient(service.url, retries=2).describe([{"url": "http://a.example/x.png"}])
    assert e.value.status == 503 and "HTTP 503" in e.value.message and "try later" in e.value.message
    assert len(service.posts) == 3


@pytest.mark.parametrize("service", [{"limits": {"max_images": 3, "max_body_bytes": 1000}}], indirect=True)
def test_requests_are_sized_by_the_published_limits(service):
    client = ServiceClient(service.url)
    assert client.limits() == {"max_images": 3, "max_body_bytes": 1000}
    results = client.describe([image_data(b"x" * 10) for _ in range(7)])
    assert len(results) == 7 and [n for _, n in service.posts] == [3, 3, 1]
    service.posts.clear()
    client.describe([image_data(b"x" * 300)] * 3)  # 400 characters of base64 each: two fit in 60 % of 1000
    assert [n for _, n in service.posts] == [1, 1, 1]


def test_defaults_when_the_service_publishes_no_limits(service):
    assert ServiceClient(service.url).limits() == DEFAULT_LIMITS


@pytest.mark.parametrize("service", [{"ready": False}], indirect=True)
def test_readiness_fails_fast_with_the_reason(service):
    t0 = time.monotonic()
    with pytest.raises(ServiceError) as e:
        ServiceClient(service.url).ready()
    assert "not ready (HTTP 503: warming up)" in e.value.message and time.monotonic() - t0 < 1


def test_an_unreachable_service_is_one_error():
    with pytest.raises(ServiceError) as e:
        ServiceClient("http://127.0.0.1:1").describe([{"url": "http://a.example/x.png"}])
    assert "cannot reach the service" in e.value.message and e.value.status is None
