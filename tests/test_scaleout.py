"""Scale-out, proven with real processes: two gunicorn instances on loopback sharing one redis-server, as replicas
behind a load balancer would. A result cached through one is served by the other; the rate limit is one limit;
killing one instance leaves the other serving; killing Redis degrades to uncached, local-limit service without
errors, and it recovers when Redis returns."""
import base64
import io
import time

import pytest
import requests

from conftest import make_shape_image, running_service

pytestmark = pytest.mark.slow


def _body(colour: str, shape: str, n: int = 1) -> dict:
    buf = io.BytesIO()
    make_shape_image(colour, shape).save(buf, "PNG")
    return {"images": [{"data": base64.b64encode(buf.getvalue()).decode()}] * n}


def _post(base: str, body: dict) -> requests.Response:
    return requests.post(base + "/v1/alt-text", json=body, timeout=60)


def test_two_replicas_share_cache_and_limit_and_survive_failures(shapes_checkpoint, redis_server, tmp_path):
    shared = dict(checkpoint=shapes_checkpoint, device="cpu", cache="redis", redis_url=redis_server.url,
                  rate_limit=12, cache_retry=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_service(tmp_path / "a", **shared) as a, running_service(tmp_path / "b", **shared) as b:
        # the cache: computed by A, served by B
        first = _post(a, _body("red", "square")).json()["results"][0]
        second = _post(b, _body("red", "square")).json()["results"][0]
        assert first["cached"] is False and second["cached"] is True and second["alt"] == first["alt"]
        # one rate limit: 2 images used; 5 through A and 5 through B reach 12; the next image is refused by either
        assert _post(a, _body("blue", "circle", 5)).status_code == 200
        assert _post(b, _body("blue", "circle", 5)).status_code == 200
        refused = _post(b, _body("blue", "circle"))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert _post(a, _body("blue", "circle")).status_code == 429

    with running_service(tmp_path / "b", **{**shared, "rate_limit": 100}) as b:
        with running_service(tmp_path / "a", **{**shared, "rate_limit": 100}) as a:
            assert _post(a, _body("green", "square")).status_code == 200
        # A is gone (stopped); B serves, and still from the shared cache
        assert _post(b, _body("green", "square")).json()["results"][0]["cached"] is True

        redis_server.stop()  # Redis dies: B answers uncached, without errors, on its local limit
        for colour in ("yellow", "green"):
            r = _post(b, _body(colour, "circle"))
            assert r.status_code == 200 and r.json()["results"][0]["cached"] is False
        assert requests.get(b + "/readyz", timeout=5).json()["cache"]["state"] == "degraded"

        redis_server.start()  # Redis returns (empty): after the retry delay B caches again
        time.sleep(1.5)
        _post(b, _body("red", "circle"))
        assert _post(b, _body("red", "circle")).json()["results"][0]["cached"] is True
        assert requests.get(b + "/readyz", timeout=5).json()["cache"]["state"] == "ok"
        log = (tmp_path / "b" / "gunicorn.log").read_text()
        assert "Traceback" not in log
