"""The HTTP service through Flask's test client, with a tiny trained model: API contract, per-image errors,
limits, auth, rate limit, CORS, metrics, hedging and the cache (SQLite across restarts, Redis when available)."""
import base64
import io
import json
import os
import time
from contextlib import contextmanager

import pytest
from conftest import LoopbackHTTP, make_shape_image
from PIL import Image

from model import Captioner
from server.service.app import create_app
from server.service.config import Config

CHROME = "chrome-extension://" + "abcdefghijklmnopabcdefghijklmnop"
FIREFOX = "moz-extension://12345678-90ab-cdef-1234-567890abcdef"


def png(colour="red", shape="square", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    make_shape_image(colour, shape).save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_site(body: bytes, on_get=None):
    """A loopback site answering every GET with ``body`` (after ``on_get()``, e.g. a delay); returns (its
    LoopbackHTTP, "127.0.0.1:PORT"). Close it when done."""
    from http.server import BaseHTTPRequestHandler

    class Site(BaseHTTPRequestHandler):
        def do_GET(self):
            if on_get is not None:
                on_get()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http = LoopbackHTTP(Site)
    return http, http.host


@pytest.fixture(scope="module")
def captioner(shapes_checkpoint):
    return Captioner.load(shapes_checkpoint, device="cpu")


@pytest.fixture
def make_client(captioner, tmp_path):
    apps = []

    def make(**overrides):
        cfg = Config(cache_path=str(tmp_path / "cache.sqlite3"), load_model=False, **overrides)
        app = create_app(cfg, captioner=captioner)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        service = app.extensions["alt_text"]["service"]
        if service:
            service.close()


def test_post_describes_images_in_order_and_caches_them(make_client, captioner):
    client = make_client()
    images = [png("red", "square"), png("blue", "circle")]
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(d)} for d in images]})
    assert r.status_code == 200
    results = r.get_json()["results"]
    expected = captioner.caption([Image.open(io.BytesIO(d)) for d in images])
    for res, exp in zip(results, expected):
        assert res["caption"] == exp.text and res["confidence"] == exp.confidence
        assert res["cached"] is False and res["model"] == captioner.version and res["elapsed_ms"] >= 0
        assert set(res) >= {"alt", "confidence", "cached", "model", "elapsed_ms"}
    again = client.post("/v1/alt-text", json={"images": [{"data": b64(images[1])}]}).get_json()["results"][0]
    assert again["cached"] is True and again["caption"] == results[1]["caption"]


def test_one_bad_image_never_fails_the_others(make_client):
    client = make_client()
    good = png("green", "square")
    truncated = png("red", "circle", "JPEG")[:200]
    specs = [
        {"data": b64(good)},
        {"data": "not base64!!"},
        {"data": b64(b"<html><body>hello</body></html>")},
        "just a string",
        {"url": "http://example.com/a.png", "data": b64(good)},
        {"data": b64(truncated)},
        {"data": 12},
        {"url": "ftp://example.com/a.png"},
        {"data": b64(b"")},
        {"data": b64(good)},
    ]
    r = client.post("/v1/alt-text", json={"images": specs})
    assert r.status_code == 200
    res = r.get_json()["results"]
    assert len(res) == len(specs)
    codes = [x["error"]["code"] if "error" in x else "ok" for x in res]
    assert codes == ["ok", "invalid_data", "unsupported_format", "invalid_image", "invalid_image", "corrupt_image",
                     "invalid_data", codes[7], "empty", "ok"]
    assert codes[7] != "ok"  # ftp:// refused by the fetcher
    assert all(x["error"]["message"] for x in res if "error" in x)


def test_data_urls_and_line_wrapped_base64_are_accepted(make_client):
    client = make_client()
    wrapped = "\n".join(b64(png()) [i : i + 76] for i in range(0, len(b64(png())), 76))
    specs = [{"data": "data:image/png;base64," + b64(png())}, {"data": wrapped}, {"data": "data:image/png;base64"}]
    res = client.post("/v1/alt-text", json={"images": specs}).get_json()["results"]
    assert "caption" in res[0] and "caption" in res[1]
    assert res[2]["error"]["code"] == "invalid_data"


def test_large_images_are_reduced_on_decode():
    from server.netsafe.images import decode_image

    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(buf, "JPEG")
    im = decode_image(buf.getvalue())
    assert max(im.size) == 1024 and im.mode == "RGB"


def test_cache_failures_do_not_fail_requests(make_client, monkeypatch):
    from server.cache import SQLiteCache

    def broken(*args):
        raise RuntimeError("disk full")

    for name in ("get", "put", "get_url", "put_url"):
        monkeypatch.setattr(SQLiteCache, name, broken)
    res = make_client().post("/v1/alt-text", json={"images": [{"data": b64(png())}]}).get_json()["results"][0]
    assert res["caption"] and res["cached"] is False


def test_url_index_is_never_consulted_for_an_invalid_url(make_client):
    res = make_client().get("/v1/alt-text", query_string={"url": "file:///etc/passwd"}).get_json()["results"][0]
    assert res["error"]["code"] == "unsupported_scheme"


def test_a_url_is_refused_for_its_length_as_every_fetch_refuses_it(make_client):
    """One limit on a URL's length, the fetch layer's (server/netsafe/limits.py): a 5000-character URL is judged on
    its address by the service as by the CLI and the audit (fetch_bytes), a longer one than the limit is refused
    by all with the same error."""
    from server.netsafe import MAX_URL_LENGTH, FetchError, fetch_bytes

    long = "http://10.0.0.1/" + "a" * (5000 - len("http://10.0.0.1/"))  # private: refused without any packet
    too_long = "http://10.0.0.1/" + "a" * MAX_URL_LENGTH
    assert len(long) == 5000 < MAX_URL_LENGTH < len(too_long)
    res = make_client().post("/v1/alt-text", json={"images": [{"url": long}, {"url": too_long}]}).get_json()
    for url, r in zip((long, too_long), res["results"]):
        with pytest.raises(FetchError) as info:
            fetch_bytes(url)
        assert (r["error"]["code"], r["error"]["message"]) == (info.value.code, info.value.message)
    assert [r["error"]["code"] for r in res["results"]] == ["blocked_address", "invalid_url"]


def test_decompression_bomb_is_refused_before_decoding(make_client):
    client = make_client(max_pixels=1_000_000)
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, "PNG")  # 25 megapixels in a few kilobytes
    res = client.post("/v1/alt-text", json={"images": [{"data": b64(buf.getvalue())}]}).get_json()["results"][0]
    assert res["error"]["code"] == "too_many_pixels" and res["error"]["status"] == 413


@pytest.mark.parametrize("body, status, code", [
    ("not json", 400, "invalid_json"),
    ("[1, 2]", 400, "invalid_json"),
    ('{"images": "x"}', 400, "invalid_images"),
    ('{"images": []}', 400, "invalid_images"),
    ('{"pictures": [{"url": "http://a"}]}', 400, "invalid_images"),
])
def test_malformed_requests_are_4xx_json(make_client, body, status, code):
    r = make_client().post("/v1/alt-text", data=body, content_type="application/json")
    assert r.status_code == status and r.get_json()["error"]["code"] == code


def test_request_limits(make_client):
    client = make_client(max_images=3, max_body_bytes=2000)
    r = client.post("/v1/alt-text", json={"images": [{"url": "http://a.example/x.png"}] * 4})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "too_many_images"
    r = client.post("/v1/alt-text", json={"images": [{"data": "A" * 5000}]})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", '{"images": [{"url": "http://a.example/x.png"}]}'),  # JSON, but not said to be
    ("application/x-www-form-urlencoded", "images=http://a.example/x.png"),
    ("multipart/form-data; boundary=x", "--x--"),
    (None, '{"images": [{"url": "http://a.example/x.png"}]}'),
])
def test_a_body_that_is_not_json_is_415(make_client, content_type, body):
    """415 says what is wrong (the media type); 400 stays for JSON that does not parse or is not an object."""
    client = make_client()
    r = client.post("/v1/alt-text", data=body, **({"content_type": content_type} if content_type else {}))
    assert r.status_code == 415 and r.is_json
    err = r.get_json()["error"]
    assert err["code"] == "unsupported_media_type" and "application/json" in err["message"]
    assert set(r.get_json()) == {"error"} and set(err) == {"code", "message"}
    for json_type in ("application/json; charset=utf-8", "application/vnd.alt-text+json"):
        r = client.post("/v1/alt-text", data=json.dumps({"images": [{"data": b64(png())}]}), content_type=json_type)
        assert r.status_code == 200 and "alt" in r.get_json()["results"][0], json_type


def test_unknown_routes_and_methods_are_json(make_client):
    client = make_client()
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
    r = client.delete("/v1/alt-text")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"


def test_get_needs_a_url_and_reports_fetch_errors_with_their_status(make_client):
    client = make_client()
    r = client.get("/v1/alt-text")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_url"
    r = client.get("/v1/alt-text", query_string={"url": "http://127.0.0.1:9/x.png"})
    assert 400 <= r.status_code < 500
    assert "error" in r.get_json()["results"][0]


def test_api_key(make_client):
    client = make_client(api_keys=("s3cret",))
    body = {"images": [{"data": b64(png())}]}
    r = client.post("/v1/alt-text", json=body)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/healthz").status_code == 200  # operations endpoints stay open


def test_rate_limit_per_client(make_client):
    client = make_client(rate_limit=2)
    body = {"images": [{"data": b64(png())}]}
    assert [client.post("/v1/alt-text", json=body).status_code for _ in range(2)] == [200, 200]
    r = client.post("/v1/alt-text", json=body)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.get_json()["error"]["code"] == "rate_limited"
    # Without configured keys, an invented key does not make a new client.
    assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "made-up"}).status_code == 429
    other = client.post("/v1/alt-text", json=body, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_rate_limit_per_valid_key_and_on_wrong_keys(make_client):
    client = make_client(rate_limit=2, api_keys=("k1", "k2"))
    body = {"images": [{"data": b64(png())}]}
    for _ in range(2):
        assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "k1"}).status_code == 200
    assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "k1"}).status_code == 429
    assert client.post("/v1/alt-text", json=body, headers={"X-API-Key": "k2"}).status_code == 200
    guesses = [client.post("/v1/alt-text", json=body, headers={"X-API-Key": f"guess{i}"}).status_code
               for i in range(3)]
    assert guesses == [401, 401, 429]  # guessing keys is rate-limited by address


def test_rate_limit_behind_a_trusted_proxy_uses_the_forwarded_address(make_client):
    body = {"images": [{"data": b64(png())}]}
    direct = make_client(rate_limit=1)
    fwd = lambda ip: {"X-Forwarded-For": ip}
    assert direct.post("/v1/alt-text", json=body, headers=fwd("1.1.1.1")).status_code == 200
    assert direct.post("/v1/alt-text", json=body, headers=fwd("2.2.2.2")).status_code == 429  # header not trusted
    proxied = make_client(rate_limit=1, trusted_proxies=1)
    assert proxied.post("/v1/alt-text", json=body, headers=fwd("1.1.1.1")).status_code == 200
    assert proxied.post("/v1/alt-text", json=body, headers=fwd("2.2.2.2")).status_code == 200
    assert proxied.post("/v1/alt-text", json=body, headers=fwd("1.1.1.1")).status_code == 429


def test_non_ascii_api_key_is_refused_not_a_crash(make_client):
    client = make_client(api_keys=("s3cret",))
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]}, headers={"X-API-Key": "caf\xe9"})
    assert r.status_code == 401


@pytest.mark.parametrize("origin, allowed", [
    (CHROME, True), (FIREFOX, True), ("https://app.example.org", True),
    ("https://evil.example", False), ("chrome-extension://short", False), (CHROME + ".evil.example", False),
    ("null", False),
])
def test_cors_allows_extensions_and_configured_origins_only(make_client, origin, allowed):
    client = make_client(cors_origins=("https://app.example.org",))
    pre = client.options("/v1/alt-text", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "content-type,x-api-key"})
    got = pre.headers.get("Access-Control-Allow-Origin")
    assert (got == origin) if allowed else (got is None)
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]}, headers={"Origin": origin})
    assert (r.headers.get("Access-Control-Allow-Origin") == origin) == allowed
    if allowed:  # the extension must be able to read when to ask again
        exposed = {h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")}
        assert {"retry-after", "ratelimit-reset"} <= exposed


def test_health_readiness_metrics_and_openapi(make_client, captioner):
    client = make_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["model"] == captioner.version
    client.post("/v1/alt-text", json={"images": [{"data": b64(png())}, {"data": "!!"}]})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'alt_text_requests_total{endpoint="/v1/alt-text",status="200"}' in text
    assert 'alt_text_errors_total{code="invalid_data"} 1.0' in text
    assert "alt_text_batch_size_count" in text and "alt_text_request_seconds_bucket" in text
    assert 'alt_text_cache_total{result="miss"}' in text
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and {"post", "get"} <= set(spec["paths"]["/v1/alt-text"])


def test_not_ready_without_a_model(tmp_path):
    app = create_app(Config(load_model=False, cache_path=str(tmp_path / "c.sqlite3")))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]})
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "model_not_loaded"


def test_cache_survives_a_restart(make_client):
    body = {"images": [{"data": b64(png("yellow", "circle"))}]}
    first = make_client().post("/v1/alt-text", json=body).get_json()["results"][0]
    second = make_client().post("/v1/alt-text", json=body).get_json()["results"][0]  # a new app, same file
    assert first["cached"] is False and second["cached"] is True
    assert second["caption"] == first["caption"]




def test_redis_cache_is_shared_by_replicas(make_client, redis_url):
    body = {"images": [{"data": b64(png("blue", "square"))}]}
    a = make_client(cache="redis", redis_url=redis_url)
    b = make_client(cache="redis", redis_url=redis_url)
    assert a.post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is False
    assert b.post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is True


def test_config_from_environment():
    cfg = Config.from_env({"ALT_TEXT_MAX_BATCH": "8", "ALT_TEXT_API_KEYS": "a, b", "ALT_TEXT_HEDGE_BELOW": "0.5",
                           "ALT_TEXT_LOAD_MODEL": "false"}, max_wait_ms=2.0)
    assert (cfg.max_batch, cfg.api_keys, cfg.hedge_below, cfg.load_model, cfg.max_wait_ms) == (
        8, ("a", "b"), 0.5, False, 2.0)
    with pytest.raises(ValueError, match="ALT_TEXT_MAX_BATCH"):
        Config.from_env({"ALT_TEXT_MAX_BATCH": "many"})


def test_requests_json_shape_is_stable(make_client):
    r = make_client().post("/v1/alt-text", json={"images": [{"data": b64(png())}]})
    assert list(json.loads(r.data)) == ["results"]


def test_sqlite_cache_prunes_expired_urls_and_old_results(tmp_path):
    import threading

    from server.cache import SQLiteCache

    cache = SQLiteCache(tmp_path / "c.sqlite3", ttl=-1, max_results=5)  # every URL entry is born expired
    cache.prune_every = 4
    for i in range(12):
        cache.put(f"k{i}", {"caption": str(i), "confidence": 0.5})
    cache.put_url("http://a.example/x.png", "v", "k11")
    assert cache.get_url("http://a.example/x.png", "v") is None  # expired
    cache.prune()
    db = cache._conn()
    assert db.execute("SELECT COUNT(*) FROM urls").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 5
    assert cache.get("k11") and cache.get("k0") is None  # the oldest went first
    seen = []  # another thread gets its own connection to the same file
    t = threading.Thread(target=lambda: seen.append(cache.get("k11")))
    t.start()
    t.join()
    assert seen == [{"caption": "11", "confidence": 0.5}]


def test_slow_fetches_run_in_parallel_not_behind_the_decode_bound(make_client):
    """Only decoding is bounded; fetches wait on the network and must overlap."""
    import threading

    state, lock = {"now": 0, "max": 0}, threading.Lock()

    def slowly():
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.5)
        with lock:
            state["now"] -= 1

    httpd, site = image_site(png("green", "circle"), slowly)
    try:
        client = make_client(test_allow_loopback=(site,), testing=True)
        specs = [{"url": f"http://{site}/img{i}.png"} for i in range(4)]
        res = client.post("/v1/alt-text", json={"images": specs}).get_json()["results"]
    finally:
        httpd.close()
    assert all("caption" in r for r in res)
    assert state["max"] >= 3


def test_a_requests_last_url_is_fetched_on_its_own_thread(make_client, monkeypatch):
    """The request thread would only wait for its last URL, so it fetches that one itself; the others overlap on
    the pool. A request of one URL, the usual one, needs no pool thread at all."""
    import threading

    httpd, site = image_site(png("green", "circle"))
    try:
        client = make_client(test_allow_loopback=(site,), testing=True, cache="none")
        service = client.application.extensions["alt_text"]["service"]
        threads, prepare = [], service._prepare

        def recording(spec, *a, **kw):
            threads.append(threading.current_thread().name)
            return prepare(spec, *a, **kw)

        monkeypatch.setattr(service, "_prepare", recording)
        for n in (1, 3):
            threads.clear()
            specs = [{"url": f"http://{site}/{n}-{i}.png"} for i in range(n)]
            res = client.post("/v1/alt-text", json={"images": specs}).get_json()["results"]
            assert len(res) == n and all("caption" in r for r in res)
            here = threading.current_thread().name  # the test client runs the request on this thread
            assert threads.count(here) == 1 and sum(t.startswith("alt-text-fetch") for t in threads) == n - 1
    finally:
        httpd.close()


# -- the describe core behind the service ---------------------------------------------------------------------

def test_results_follow_the_openapi_schema_and_the_describe_core(make_client, captioner):
    import jsonschema

    from server.describe import Describer
    from server.service.openapi import openapi_spec

    client = make_client()
    image = png("red", "square")
    result = client.post("/v1/alt-text", json={"images": [{"data": b64(image)}, {"data": "!!"}]}).get_json()
    schema = openapi_spec()["paths"]["/v1/alt-text"]["post"]["responses"]["200"]["content"]["application/json"]
    jsonschema.Draft202012Validator(schema["schema"]).validate(result)
    good = result["results"][0]
    # The service shows exactly what the one pipeline decided: no hedge of its own on top.
    ocr = client.application.extensions["alt_text"]["service"].describer.ocr
    direct = Describer(captioner, ocr=ocr).describe([Image.open(io.BytesIO(image))])[0]
    assert {k: good[k] for k in direct} == direct
    prefix = "Might be: " if good["hedged"] else "Appears to be: "
    assert good["alt"] == prefix + good["caption"][0].lower() + good["caption"][1:]


def test_readiness_and_metrics_report_the_pipeline(make_client):
    client = make_client()
    ready = client.get("/readyz").get_json()
    assert ready["pipeline"].startswith(ready["model"]) and ready["honesty_heads"] is False
    assert isinstance(ready["ocr"], bool)
    client.post("/v1/alt-text", json={"images": [{"data": b64(png("green", "circle"))}]})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'alt_text_kinds_total{kind="photo"} 1.0' in text


def test_withheld_reasons_are_counted(make_client):
    client = make_client(withhold_below=1.0)  # nothing is sure enough: every caption is withheld
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png("blue", "circle"))}]}).get_json()["results"][0]
    assert r["alt"] is None and r["withheld"] and r["reason"] == "low_confidence" and r["caption"]
    assert 'alt_text_withheld_total{reason="low_confidence"} 1.0' in client.get("/metrics").get_data(as_text=True)


def test_without_ocr_the_service_still_describes(make_client):
    client = make_client(ocr=False)
    assert client.get("/readyz").get_json()["ocr"] is False
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]}).get_json()["results"][0]
    assert r["alt"] and r["ocr"] == "unavailable"


def test_cache_namespace_changes_with_the_pipeline_version(make_client, monkeypatch):
    from server.describe import pipeline

    body = {"images": [{"data": b64(png("red", "circle"))}]}
    first = make_client()
    assert first.post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is False
    assert first.post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is True
    monkeypatch.setattr(pipeline, "PIPELINE_VERSION", "describe-next")
    later = make_client()  # same cache file, new pipeline: the old evidence must not be served
    assert later.get("/readyz").get_json()["pipeline"].count("describe-next") == 1
    assert later.post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is False


def test_changed_wording_applies_to_cached_results(make_client):
    body = {"images": [{"data": b64(png("yellow", "square"))}]}
    assert make_client().post("/v1/alt-text", json=body).get_json()["results"][0]["cached"] is False
    again = make_client(sure_prefix="Probably: ", unsure_prefix="Probably: ").post("/v1/alt-text", json=body)
    r = again.get_json()["results"][0]
    assert r["cached"] is True and r["alt"].startswith("Probably: ")


def test_limits_are_published_for_clients(make_client, tmp_path):
    client = make_client(max_images=8, max_body_bytes=5_000_000)
    want = {"max_images": 8, "max_body_bytes": 5_000_000, "max_image_bytes": 10_000_000, "max_pixels": 40_000_000}
    assert client.get("/v1/limits").get_json() == want
    assert client.get("/readyz").get_json()["limits"] == want
    # also before a model is loaded: a client sizes its requests first
    bare = create_app(Config(load_model=False, cache_path=str(tmp_path / "c.sqlite3"))).test_client()
    assert bare.get("/v1/limits").get_json()["max_images"] == 16


def test_slow_upstreams_of_two_clients_do_not_delay_a_third_clients_upload(make_client):
    """Clients A and B ask for slow URLs (each fetch takes SLOW seconds); client C uploads bytes meanwhile. C's
    image is decoded on its own request thread and never queues behind A's and B's fetches."""
    import threading

    slow = 1.5
    upstream, origin = image_site(png("red", "square"), lambda: time.sleep(slow))
    client = make_client(api_keys=("a", "b", "c"), test_allow_loopback=(origin,), testing=True, cache="none",
                         rate_limit=0)
    try:
        def slow_client(key):
            urls = [{"url": f"http://{origin}/{key}/{i}.png"} for i in range(8)]
            client.post("/v1/alt-text", json={"images": urls}, headers={"X-API-Key": key})

        others = [threading.Thread(target=slow_client, args=(k,), daemon=True) for k in ("a", "b")]
        for t in others:
            t.start()
        time.sleep(0.3)  # A's and B's fetches hold their share of the pool now
        t0 = time.monotonic()
        r = client.post("/v1/alt-text", json={"images": [{"data": b64(png("blue", "circle"))}]},
                        headers={"X-API-Key": "c"})
        waited = time.monotonic() - t0
        assert r.status_code == 200 and r.get_json()["results"][0]["alt"]
        assert waited < slow / 5, waited  # its own decode and caption, not a wave of slow fetches
        for t in others:
            t.join(30)
    finally:
        upstream.close()


def test_the_loopback_test_switch_needs_testing_mode_too(caplog):
    alone = Config(test_allow_loopback=("127.0.0.1:8080",))
    assert alone.fetch_limits().test_allow_loopback == () and "ignored" in caplog.text
    on = Config(test_allow_loopback=("127.0.0.1:8080",), testing=True)
    assert on.fetch_limits().test_allow_loopback == ("127.0.0.1:8080",)


# -- a failing cache costs milliseconds, never the service --------------------------------------------------

def test_a_failing_cache_is_bypassed_for_a_while_and_logged_once(caplog):
    from server.cache import FailSafeCache

    class Broken:
        calls = 0

        def get(self, key):
            Broken.calls += 1
            raise OSError("disk I/O error")

    now = [0.0]
    cache = FailSafeCache(Broken, max_failures=3, cooldown=30, clock=lambda: now[0])
    assert cache.state == "ok"
    for _ in range(10):
        assert cache.get("k") is None
    assert Broken.calls == 3 and cache.state == "degraded" and "disk I/O error" in cache.reason
    assert caplog.text.count("the cache is failing") == 1 and "Traceback" not in caplog.text
    now[0] = 31.0  # after the cool-down one call tries it again
    cache.get("k")
    assert Broken.calls == 4


def test_a_cache_that_cannot_open_degrades_and_recovers(tmp_path):
    from server.cache import FailSafeCache, SQLiteCache

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    now = [0.0]
    path = [blocker / "cache.sqlite3"]  # under a regular file
    cache = FailSafeCache(lambda: SQLiteCache(path[0], ttl=60), clock=lambda: now[0])
    assert cache.state == "degraded" and cache.reason.startswith(("FileExistsError", "NotADirectoryError"))
    assert cache.get("k") is None
    path[0], now[0] = tmp_path / "ok.sqlite3", 60.0
    cache.put("k", {"v": 1})
    assert cache.state == "ok" and cache.get("k") == {"v": 1}


@pytest.mark.parametrize("damage", ["under_a_file", "garbage", "truncated_while_serving"])
def test_a_damaged_cache_file_never_stops_or_stalls_the_service(tmp_path, shapes_checkpoint, damage):
    from conftest import running_service

    path = tmp_path / "cache.sqlite3"
    if damage == "under_a_file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "cache.sqlite3"
    elif damage == "garbage":
        path.write_bytes(os.urandom(16 * 1024))
    body = {"images": [{"data": b64(png("red", "circle"))}]}
    import requests

    with running_service(tmp_path, checkpoint=shapes_checkpoint, device="cpu", cache_path=path, rate_limit=0) as base:
        if damage == "truncated_while_serving":
            assert requests.post(base + "/v1/alt-text", json=body, timeout=30).status_code == 200
            for f in (path, path.with_name(path.name + "-wal")):
                f.write_bytes(b"")  # the database and its -wal emptied under the running service
        t0 = time.monotonic()
        for i in range(5):
            r = requests.post(base + "/v1/alt-text", json={"images": [{"data": b64(png("blue", "square"))}]},
                              timeout=30)
            assert r.status_code == 200 and r.json()["results"][0]["alt"]
        assert time.monotonic() - t0 < 10  # five requests, no waits on locks
        ready = requests.get(base + "/readyz", timeout=5).json()
        if damage != "truncated_while_serving":
            assert ready["cache"]["state"] == "degraded" and ready["cache"]["reason"]
        log = (tmp_path / "gunicorn.log").read_text()
        assert "Traceback" not in log and log.count("the cache is failing") <= 1


def test_rate_limit_counts_images_and_sends_standard_headers(make_client):
    client = make_client(rate_limit=5)
    three = {"images": [{"data": b64(png())}] * 3}
    r = client.post("/v1/alt-text", json=three)
    assert r.status_code == 200 and r.headers["RateLimit-Limit"] == "5" and r.headers["RateLimit-Remaining"] == "2"
    assert client.post("/v1/alt-text", json=three).status_code == 429  # 3 more images do not fit in the 2 left


def test_rate_limit_reset_is_seconds_and_retry_after_comes_only_with_429(make_client):
    """RateLimit-Reset is the IETF draft's delta (seconds until the window resets), not a timestamp; Retry-After
    is sent on a 429 only, never on a success."""
    client = make_client(rate_limit=3)
    body = {"images": [{"data": b64(png())}]}
    for r in (client.post("/v1/alt-text", json=body), client.get("/v1/limits")):
        assert r.status_code == 200 and "Retry-After" not in r.headers
        assert 0 <= int(r.headers["RateLimit-Reset"]) <= 60  # a one-minute window
    r = client.post("/v1/alt-text", data="not json", content_type="application/json")  # an error that is not 429
    assert r.status_code == 400 and "Retry-After" not in r.headers
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}] * 2})
    assert r.status_code == 429 and r.headers["RateLimit-Remaining"] == "0"
    reset, retry = int(r.headers["RateLimit-Reset"]), int(r.headers["Retry-After"])
    assert 1 <= retry <= 60 and 0 <= reset <= 60 and abs(retry - reset) <= 1
    assert r.headers.getlist("Retry-After") == [str(retry)] and len(r.headers.getlist("RateLimit-Reset")) == 1


def test_a_503_keeps_its_own_retry_after_and_a_503_without_one_gets_none(make_client, tmp_path):
    client = make_client(rate_limit=100, cache="none")
    client.application.extensions["alt_text"]["service"].close()
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]})
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "shutting_down"
    assert r.headers["Retry-After"] == "1"  # the service's own, not the rate limiter's time to the window's reset
    assert 0 <= int(r.headers["RateLimit-Reset"]) <= 60
    no_model = create_app(Config(cache="none", load_model=False, rate_limit=100)).test_client()
    r = no_model.post("/v1/alt-text", json={"images": [{"data": b64(png())}]})
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "model_not_loaded"
    assert "Retry-After" not in r.headers  # nothing says when a model will be loaded


def test_rate_limit_is_shared_through_redis(make_client, redis_url):
    body = {"images": [{"data": b64(png())}] * 2}
    a = make_client(rate_limit=3, cache="none", redis_url=redis_url)
    b = make_client(rate_limit=3, cache="none", redis_url=redis_url)  # another worker or replica
    assert a.post("/v1/alt-text", json=body).status_code == 200
    assert b.post("/v1/alt-text", json=body).status_code == 429  # 4 images > 3: the two share one limit


def test_without_redis_the_service_degrades_to_local_limits_and_no_cache(make_client):
    client = make_client(rate_limit=2, redis_url="redis://127.0.0.1:9/0")  # nothing listens there
    body = {"images": [{"data": b64(png())}]}
    t0 = time.monotonic()
    assert [client.post("/v1/alt-text", json=body).status_code for _ in range(3)] == [200, 200, 429]
    assert time.monotonic() - t0 < 15
    assert client.get("/readyz").get_json()["cache"]["state"] == "degraded"


def test_one_rate_limit_across_endpoints_and_preflights_are_free(make_client):
    client = make_client(rate_limit=3)
    body = {"images": [{"data": b64(png())}]}
    pre = {"Origin": CHROME, "Access-Control-Request-Method": "POST"}
    for _ in range(5):
        assert client.options("/v1/alt-text", headers=pre).status_code == 200  # pre-flights cost nothing
    assert client.get("/v1/limits").status_code == 200
    assert client.post("/v1/alt-text", json=body).status_code == 200
    assert client.post("/v1/alt-text", json=body).status_code == 200
    assert client.get("/v1/limits").status_code == 429  # the same count, whichever endpoint


def test_braces_in_a_configured_prefix_are_words(make_client):
    r = make_client(sure_prefix="{Machine} ", unsure_prefix="{Machine?} ").post(
        "/v1/alt-text", json={"images": [{"data": b64(png())}]})
    assert r.status_code == 200 and r.get_json()["results"][0]["alt"].startswith("{Machine")


# -- review of issue 12: the cache gauge, draining, what the batcher waits for, the body cap, one deadline error ----

@contextmanager
def held_upstream(body: bytes):
    """A loopback image server whose answers finish only when the test releases them: ``arrived`` is set when a
    request reaches it (the image is on the network now), ``release`` lets every answer go. Meanwhile it sends the
    body a byte at a time, so the fetch is neither answered nor cut off by the fetcher's read timeout."""
    import threading
    from http.server import BaseHTTPRequestHandler

    arrived, release = threading.Event(), threading.Event()

    class Held(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            arrived.set()
            sent = 0
            while not release.wait(0.5) and sent < len(body) - 1:
                self.wfile.write(body[sent:sent + 1])
                self.wfile.flush()
                sent += 1
            release.wait(30)
            self.wfile.write(body[sent:])

        def log_message(self, *args):
            pass

    http = LoopbackHTTP(Held)
    try:
        yield http.host, arrived, release
    finally:
        release.set()
        http.close()


def _in_thread(fn):
    import threading

    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_the_cache_gauge_changes_with_the_cache_not_with_scrapes(make_client, monkeypatch):
    from server.cache import FailSafeCache, SQLiteCache

    changes = []
    broken = [True]

    class Flaky:
        def get(self, key):
            if broken[0]:
                raise OSError("disk I/O error")

    now = [0.0]
    cache = FailSafeCache(Flaky, max_failures=3, cooldown=30, clock=lambda: now[0], on_change=changes.append)
    for _ in range(5):
        cache.get("k")
    assert changes == [True]  # once, when the breaker opens
    now[0] = 31.0
    cache.get("k")  # a failed probe: still degraded, no new change
    assert changes == [True]
    broken[0], now[0] = False, 62.0
    cache.get("k")
    cache.get("k")
    assert changes == [True, False]

    # In the app: the gauge is set when the state changes; nothing scrapes /metrics here.
    def fail(*args):
        raise OSError("disk full")

    for name in ("get", "put", "get_url", "put_url"):
        monkeypatch.setattr(SQLiteCache, name, fail)
    client = make_client(cache_retry=0)
    registry = client.application.extensions["alt_text"]["metrics"].registry
    assert registry.get_sample_value("alt_text_cache_degraded") == 0
    body = {"images": [{"data": b64(png("green", "square"))}]}
    for _ in range(2):  # a look-up and a store each: the third failure opens the breaker
        assert client.post("/v1/alt-text", json=body).status_code == 200
    assert registry.get_sample_value("alt_text_cache_degraded") == 1
    monkeypatch.undo()  # the disk is fine again: the next call (cache_retry=0) probes it and works
    assert client.post("/v1/alt-text", json=body).status_code == 200
    assert registry.get_sample_value("alt_text_cache_degraded") == 0


def test_a_dead_workers_cache_gauge_goes_with_it(tmp_path, monkeypatch):
    """Multiprocess mode "livemax": a worker that said "degraded" and died (marked dead by child_exit) no longer
    counts; with "max" its file stayed and the gauge said 1 for ever."""
    import re
    import subprocess
    import sys
    import types

    from conftest import REPO

    from server.service import hooks
    from server.service.metrics import ServiceMetrics

    code = "from server.service.metrics import ServiceMetrics; ServiceMetrics().cache_degraded.set(1)"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                              env=dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    assert worker.wait(60) == 0
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    def gauge():
        found = re.search(r"^alt_text_cache_degraded (\S+)$", ServiceMetrics().render().decode(), re.MULTILINE)
        return float(found.group(1)) if found else None

    assert gauge() == 1.0
    hooks.child_exit(None, types.SimpleNamespace(pid=worker.pid))
    assert gauge() in (None, 0.0)


def test_close_drains_requests_in_flight_and_refuses_new_ones(make_client, caplog):
    """close() (gunicorn's worker_exit) lets the request in flight finish with its answer, and answers requests
    that arrive meanwhile with a clean 503 JSON error; never a 500."""
    with held_upstream(png("blue", "square")) as (origin, arrived, release):
        client = make_client(test_allow_loopback=(origin,), testing=True, cache="none", rate_limit=0)
        app = client.application
        service = app.extensions["alt_text"]["service"]
        request, answer = _in_thread(lambda: app.test_client().post(
            "/v1/alt-text", json={"images": [{"url": f"http://{origin}/a.png"}]}))
        assert arrived.wait(10)  # the request is in flight, its image on the network
        closer, closed = _in_thread(service.close)
        for _ in range(1000):
            if service.closing:
                break
            time.sleep(0.01)
        assert service.closing and closer.is_alive()  # draining: waits for the request in flight
        late = client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]})
        assert late.status_code == 503 and late.headers["Retry-After"] == "1"
        assert late.get_json()["error"]["code"] == "shutting_down" and late.get_json()["error"]["message"]
        got = client.get("/v1/alt-text", query_string={"url": f"http://{origin}/b.png"})
        assert got.status_code == 503 and got.get_json()["error"]["code"] == "shutting_down"
        assert client.get("/readyz").status_code == 503
        release.set()
        request.join(30)
        closer.join(30)
    assert answer[0].status_code == 200 and answer[0].get_json()["results"][0]["alt"]
    assert closed == [True]
    assert "Traceback" not in caplog.text and "internal_error" not in caplog.text


def test_an_image_on_the_network_does_not_hold_batches(make_client):
    """Only images whose bytes are here (being decoded or preprocessed) count as coming: with one image stuck on
    a slow upstream, an upload's batch runs at once, not after max_wait_ms (ten minutes here)."""
    with held_upstream(png("blue", "square")) as (origin, arrived, release):
        client = make_client(test_allow_loopback=(origin,), testing=True, cache="none", rate_limit=0,
                             max_wait_ms=600_000, fetch_timeout=600)
        app = client.application
        service = app.extensions["alt_text"]["service"]
        slow, _ = _in_thread(lambda: app.test_client().post(
            "/v1/alt-text", json={"images": [{"url": f"http://{origin}/a.png"}]}))
        assert arrived.wait(10)
        assert service.coming() == 0  # on the network: not coming
        upload, answer = _in_thread(lambda: client.post("/v1/alt-text", json={"images": [{"data": b64(png())}]}))
        upload.join(30)
        assert answer and answer[0].status_code == 200 and answer[0].get_json()["results"][0]["alt"]
        assert slow.is_alive()  # answered while the other image is still on its way, not after it
        release.set()
        slow.join(30)


def test_the_images_of_one_upload_share_one_batch(make_client):
    """An upload's images are counted as coming from the start of its request: the worker waits for all of them
    (and only for them) and runs one forward pass."""
    client = make_client(cache="none", rate_limit=0, max_wait_ms=600_000)
    registry = client.application.extensions["alt_text"]["metrics"].registry
    body = {"images": [{"data": b64(png(c, s))} for c, s in (("red", "square"), ("blue", "circle"),
                                                              ("green", "square"), ("yellow", "circle"))]}
    upload, answer = _in_thread(lambda: client.post("/v1/alt-text", json=body))
    upload.join(30)
    assert answer and all(r["alt"] for r in answer[0].get_json()["results"])
    # Early answers reach the request before the batch ends; the batch is counted just after it ends.
    for _ in range(500):
        if registry.get_sample_value("alt_text_batch_size_count"):
            break
        time.sleep(0.01)
    assert registry.get_sample_value("alt_text_batch_size_count") == 1
    assert registry.get_sample_value("alt_text_batch_size_sum") == 4


def test_the_body_cap_is_checked_before_the_rate_limiter(make_client, caplog):
    """One check, before flask-limiter counts the images: its cost function never meets an over-limit body (which
    it logged as a failure to rate limit, with a traceback), and every method gets the same 413 JSON error."""
    client = make_client(max_body_bytes=2000, rate_limit=5)
    big = {"images": [{"data": "A" * 5000}]}
    r = client.post("/v1/alt-text", json=big)
    assert r.status_code == 413 and r.get_json() == {"error": {
        "code": "body_too_large", "message": "the request body is larger than 2,000 bytes"}}
    r = client.get("/v1/alt-text", query_string={"url": "http://a.example/x.png"}, data="x" * 5000)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"
    # no Content-Length (chunked): the body turns out too long while it is read
    r = client.post("/v1/alt-text", input_stream=io.BytesIO(json.dumps(big).encode()),
                    content_type="application/json", environ_overrides={"wsgi.input_terminated": True})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"
    assert "Traceback" not in caplog.text and "rate limit" not in caplog.text.lower()
    three = {"images": [{"data": b64(png())}] * 3}
    assert client.post("/v1/alt-text", json=three).headers["RateLimit-Remaining"] == "2"  # only these counted
    exactly = json.dumps({"images": [{"data": ""}]}).encode()
    exactly = exactly.replace(b'""', b'"' + b"A" * (2000 - len(exactly)) + b'"')
    assert len(exactly) == 2000  # at the cap, without a length: read whole, and accepted
    r = client.post("/v1/alt-text", input_stream=io.BytesIO(exactly), content_type="application/json",
                    environ_overrides={"wsgi.input_terminated": True})
    assert r.status_code == 200 and "error" in r.get_json()["results"][0]


def test_an_over_limit_body_leaves_the_shared_limit_shared(make_client, redis_url):
    """With Redis, an exception in the limiter's cost function made it fall back to its in-memory limit."""
    body = {"images": [{"data": b64(png())}] * 2}
    a = make_client(rate_limit=3, cache="none", redis_url=redis_url, max_body_bytes=50_000)
    b = make_client(rate_limit=3, cache="none", redis_url=redis_url, max_body_bytes=50_000)
    assert a.post("/v1/alt-text", json={"images": [{"data": "A" * 60_000}]}).status_code == 413
    assert a.post("/v1/alt-text", json=body).status_code == 200
    assert b.post("/v1/alt-text", json=body).status_code == 429  # still one limit across both


def test_every_way_to_miss_the_deadline_gives_the_same_error(make_client, monkeypatch):
    """The request's deadline passes while waiting for a fetch slot, while waiting for a fetch, or before a fetch
    that finished late is captioned: one error, defined once."""
    from server.service import alt_text

    monkeypatch.setattr(alt_text, "REQUEST_DEADLINE", 0.0)  # every request is late at once
    monkeypatch.setattr(alt_text, "FETCHES_PER_CLIENT", 1)
    with held_upstream(png("red", "circle")) as (origin, _, release):
        client = make_client(test_allow_loopback=(origin,), testing=True, cache="none", rate_limit=0)
        service = client.application.extensions["alt_text"]["service"]
        urls = [{"url": f"http://{origin}/{i}.png"} for i in range(2)]
        waiting_for_fetch, waiting_for_slot = client.post("/v1/alt-text", json={"images": urls}).get_json()["results"]
        release.set()
        fetched_late = service._prepare(urls[0], deadline=time.monotonic() - 1)
    want = {"code": "deadline_exceeded", "message": alt_text.DEADLINE_EXCEEDED[1], "status": 504}
    assert waiting_for_fetch["error"] == waiting_for_slot["error"] == fetched_late["error"] == want


# -- how the service runs the model on a CPU (server/service/tuning.py): faster, same answers ------------------

def test_the_service_runs_the_encoder_channels_last_with_the_same_answers(make_client, shapes_checkpoint):
    import torch

    from server.describe import Describer

    client = make_client()
    encoder = client.application.extensions["alt_text"]["service"].captioner.model.encoder
    convs = [p for p in encoder.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    untouched = Describer(Captioner.load(shapes_checkpoint, device="cpu"))  # default layout
    for colour, shape in (("red", "square"), ("blue", "circle"), ("yellow", "square")):
        got = client.post("/v1/alt-text", json={"images": [{"data": b64(png(colour, shape))}]}).get_json()
        want = untouched.describe([Image.open(io.BytesIO(png(colour, shape)))])[0]
        assert got["results"][0]["caption"] == want["caption"]
        assert got["results"][0]["raw_confidence"] == pytest.approx(want["raw_confidence"], abs=1e-3)


def test_a_service_process_keeps_the_memory_the_model_frees():
    """In a process of its own (the settings are process-wide): glibc accepts them."""
    import platform
    import subprocess
    import sys

    from conftest import REPO

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    code = "from server.service.tuning import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.stdout.strip() == "True", out.stderr


def test_a_service_process_keeps_what_it_loaded_out_of_the_collectors_full_passes():
    """In a process of its own (a frozen object stays frozen): what was alive is frozen, a collection still frees
    a cycle made afterwards."""
    import subprocess
    import sys

    from conftest import REPO

    code = ("import gc, weakref\n"
            "from server.service.tuning import freeze_loaded_objects\n"
            "freeze_loaded_objects()\n"
            "frozen = gc.get_freeze_count()\n"
            "class Node: pass\n"
            "a, b = Node(), Node(); a.other, b.other = b, a\n"
            "alive = weakref.ref(a); del a, b\n"
            "gc.collect()\n"
            "print(frozen > 1000, alive() is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_meanings_brands_and_chart_types_are_counted(make_client, monkeypatch):
    client = make_client()
    describer = client.application.extensions["alt_text"]["service"].describer
    decide = describer.decide

    def named(ev, markup=None):  # what the pipeline returns for a sure icon; the tiny test model has no meaning head
        return {**decide(ev, markup), "kind": "icon", "alt": "Icon: Search.",
                "meaning": {"id": "search", "label": "Search", "p": 0.97, "source": "image"}, "control_name": "Search"}

    monkeypatch.setattr(describer, "decide", named)
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png("red", "circle"))}]}).get_json()["results"][0]
    assert r["meaning"]["id"] == "search" and r["control_name"] == "Search"
    text = client.get("/metrics").get_data(as_text=True)
    assert 'alt_text_meanings_total{meaning="meaning:search"} 1.0' in text
    assert 'alt_text_named_by_total{source="image"} 1.0' in text


def test_markup_names_an_icon_per_request_and_is_never_cached_with_it(make_client, monkeypatch):
    client = make_client()
    describer = client.application.extensions["alt_text"]["service"].describer
    gather = describer.gather

    def as_icon(pixels, out, image):  # the tiny test model has no kind head: this image is an icon to it
        ev = gather(pixels, out, image)
        ev.kind_probs = {"photo": 0.05, "icon": 0.9, "logo": 0.05}
        return ev

    monkeypatch.setattr(describer, "gather", as_icon)
    data = b64(png("red", "circle"))
    first = client.post("/v1/alt-text", json={"images": [
        {"data": data, "markup": {"class": "fa-solid fa-magnifying-glass fa-fw"}}]}).get_json()["results"][0]
    assert first["alt"] == "Icon: Search." and first["control_name"] == "Search" and not first["cached"]
    assert first["meaning"] == {"id": "search", "label": "Search", "p": 1.0, "source": "markup"}
    # the same pixels again: from the cache, named by this request's markup, or by none
    again = client.post("/v1/alt-text", json={"images": [{"data": data, "markup": {"ligature": "shopping_cart"}},
                                                         {"data": data}]}).get_json()["results"]
    assert [r["cached"] for r in again] == [True, True]
    assert [r["alt"] for r in again] == ["Icon: Shopping cart.", "Icon."]
    # a page's broken address names nothing, and fails nothing
    odd = client.post("/v1/alt-text", json={"images": [{"data": data, "markup": {"file": "http://[x/home.png"}}]})
    assert odd.status_code == 200 and odd.get_json()["results"][0]["alt"] == "Icon."
    text = client.get("/metrics").get_data(as_text=True)
    assert 'alt_text_meanings_total{meaning="meaning:search"} 1.0' in text
    assert 'alt_text_named_by_total{source="markup"} 2.0' in text


@pytest.mark.parametrize("markup, says", [("fa-house", "must be an object"), ({"href": "#x"}, "takes only"),
                                          ({"class": ["fa-house"]}, "must be a string"),
                                          ({"symbol": "x" * 301}, "longer than 300")])
def test_bad_markup_is_that_images_400_and_the_others_are_described(make_client, markup, says):
    client = make_client()
    r = client.post("/v1/alt-text", json={"images": [{"data": b64(png()), "markup": markup},
                                                     {"data": b64(png())}]})
    assert r.status_code == 200
    bad, good = r.get_json()["results"]
    assert bad["error"]["code"] == "invalid_markup" and bad["error"]["status"] == 400
    assert says in bad["error"]["message"] and good["alt"] is not None
