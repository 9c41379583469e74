"""/openapi.json against the service's real responses: every request below is sent through the Flask test client
(with the tiny trained model) and its response validated by openapi-core, status code and body, so the document
clients generate code from cannot drift from what the service answers."""
import base64
import io

import pytest
from conftest import make_shape_image
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import (
    WerkzeugOpenAPIRequest,
    WerkzeugOpenAPIResponse,
)
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from model import Captioner
from server.service.app import create_app
from server.service.config import Config
from server.service.openapi import openapi_spec


def _png() -> str:
    buf = io.BytesIO()
    make_shape_image("red", "square").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def clients(shapes_checkpoint, tmp_path_factory):
    captioner = Captioner.load(shapes_checkpoint, device="cpu")
    apps = []

    def make(**kw):
        cfg = Config(**{"cache": "none", "load_model": False, "rate_limit": 0, **kw})
        apps.append(create_app(cfg, captioner=captioner))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["alt_text"]["service"].close()


REQUESTS = [
    ("post", "/v1/alt-text", {"json": {"images": [{"data": "<png>"}]}}, 200),
    ("post", "/v1/alt-text", {"json": {"images": [{"data": "!!"}, {"url": "ftp://x/a.png"}, "no"]}}, 200),
    ("post", "/v1/alt-text", {"data": "not json", "content_type": "application/json"}, 400),
    ("post", "/v1/alt-text", {"data": "images=x", "content_type": "application/x-www-form-urlencoded"}, 415),
    ("post", "/v1/alt-text", {"json": {"images": []}}, 400),
    ("post", "/v1/alt-text", {"json": {"images": [{"data": "<png>"}] * 17}}, 413),
    ("get", "/v1/alt-text?url=ftp://example.org/a.png", {}, 400),
    ("get", "/v1/alt-text?url=http://10.0.0.1/a.png", {}, 403),
    ("get", "/v1/alt-text", {}, 400),
    ("get", "/v1/limits", {}, 200),
    ("get", "/healthz", {}, 200),
    ("get", "/readyz", {}, 200),
    ("get", "/metrics", {}, 200),
]


def check(api, r, method: str, path: str, **kw) -> None:
    """Validate a response; the request is rebuilt, since the test client has consumed its body."""
    request = Request(EnvironBuilder(path=path, method=method.upper(), **kw).get_environ())
    api.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(r))


@pytest.mark.parametrize("method, path, kw, status", REQUESTS, ids=[f"{m} {p} {s}" for m, p, _, s in REQUESTS])
def test_responses_match_the_openapi_document(clients, method, path, kw, status):
    api = OpenAPI.from_dict(openapi_spec())
    if "json" in kw:
        kw = {"json": {"images": [({"data": _png()} if i == {"data": "<png>"} else i) for i in kw["json"]["images"]]}}
    r = getattr(clients(), method)(path, **kw)
    assert r.status_code == status, r.get_data(as_text=True)
    check(api, r, method, path, **kw)


def test_auth_and_rate_limit_errors_match_the_document(clients):
    api = OpenAPI.from_dict(openapi_spec())
    body = {"images": [{"data": _png()}]}
    r = clients(api_keys=("k",)).post("/v1/alt-text", json=body)
    assert r.status_code == 401
    check(api, r, "post", "/v1/alt-text", json=body)
    limited = clients(rate_limit=1)
    limited.post("/v1/alt-text", json=body)
    r = limited.post("/v1/alt-text", json=body)
    assert r.status_code == 429 and r.headers["Retry-After"]
    check(api, r, "post", "/v1/alt-text", json=body)


def test_body_too_large_and_shutting_down_match_the_document(clients):
    api = OpenAPI.from_dict(openapi_spec())
    big = {"images": [{"data": "A" * 5000}]}
    r = clients(max_body_bytes=2000).post("/v1/alt-text", json=big)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"
    check(api, r, "post", "/v1/alt-text", json=big)
    closing = clients()
    closing.application.extensions["alt_text"]["service"].close()
    body = {"images": [{"data": _png()}]}
    for method, path, kw in (("post", "/v1/alt-text", {"json": body}),
                             ("get", "/v1/alt-text?url=http://a.example/x.png", {})):
        r = getattr(closing, method)(path, **kw)
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "shutting_down"
        check(api, r, method, path, **kw)
