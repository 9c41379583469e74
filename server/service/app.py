"""Flask app factory for the alt-text service (``create_app(config)``), in the shape of the Flask tutorial:
configuration object in, blueprints registered, per-app state in ``app.extensions`` (nothing process-global).

    gunicorn 'server.service.app:create_app()'      # configured by ALT_TEXT_* environment variables
    alt-text serve --port 8000              # the same, with flags
"""
from __future__ import annotations

import hmac
import logging
import math
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_cors import CORS
from flask_limiter import HeaderNames, Limiter
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from ..cache import FailSafeCache, check_cache_settings, open_cache
from ..describe import Describer
from ..describe.ocr import Ocr
from ..describe.ocr import available as ocr_available
from . import tuning
from .admission import Overloaded
from .alt_text import SHUTTING_DOWN, AltTextService, ServiceClosing
from .config import Config
from .metrics import CONTENT_TYPE, ServiceMetrics
from .model_process import ModelProcess, ModelProcessError
from .openapi import openapi_spec

log = logging.getLogger(__name__)
EXTENSION_ORIGINS = (r"^chrome-extension://[a-p]{32}$", r"^moz-extension://[0-9a-f-]{36}$")

api = Blueprint("api", __name__, url_prefix="/v1")
ops = Blueprint("ops", __name__)


def _state():
    return current_app.extensions["alt_text"]


def error(status: int, code: str, message: str, **headers) -> Response:
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    resp.headers.update(headers)
    if "Retry-After" in headers:  # ours, kept over the rate limiter's (see _rate_limit_headers)
        g.retry_after = headers["Retry-After"]
    _state()["metrics"].errors.labels(code).inc()
    return resp


def _valid_key() -> bool:
    cfg: Config = current_app.config["ALT_TEXT"]
    key = request.headers.get("X-API-Key", "").encode("utf-8", "surrogateescape")
    return bool(cfg.api_keys) and any(hmac.compare_digest(key, k.encode()) for k in cfg.api_keys)


def client_key() -> str:
    """Who is asking, for the rate limit and the fetch pool's fair shares. A client is its key only when keys are
    configured and the key is valid: anything a client can invent (a made-up key) must not buy it a fresh
    bucket; otherwise its address (the forwarded one behind trusted proxies)."""
    if "client" not in g:
        key = request.headers.get("X-API-Key", "")
        g.client = "key:" + key if _valid_key() else "addr:" + (request.remote_addr or "?")
    return g.client


def images_in_request() -> int:
    """The rate limit counts images, not requests: one request may carry max_images URLs."""
    if request.method != "POST":
        return 1
    body = request.get_json(silent=True)
    images = body.get("images") if isinstance(body, dict) else None
    limit = current_app.config["ALT_TEXT"].max_images
    return min(max(len(images), 1), limit) if isinstance(images, list) else 1


@api.before_request
def _guard():
    cfg: Config = current_app.config["ALT_TEXT"]
    if request.method == "OPTIONS":
        return None  # CORS pre-flight carries no credentials
    if cfg.api_keys and not _valid_key():
        return error(401, "unauthorized", "a valid X-API-Key header is required")
    service = _state()["service"]
    if service is None and request.endpoint != "api.limits":
        return error(503, "model_not_loaded", "the model is not loaded")
    if service is not None and service.closing:
        return _shutting_down()
    return None


def _shutting_down() -> Response:
    code, message, status = SHUTTING_DOWN
    return error(status, code, message, **{"Retry-After": "1"})


def _images_from_body():
    if not request.is_json:  # application/json or application/*+json; 400 is for JSON that is wrong
        return None, error(415, "unsupported_media_type",
                           f"send the body as JSON with Content-Type: application/json, not "
                           f"{request.mimetype or 'no Content-Type'}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, error(400, "invalid_json", "the body must be a JSON object like {\"images\": [{\"url\": ...}]}")
    images = body.get("images")
    if not isinstance(images, list) or not images:
        return None, error(400, "invalid_images", "'images' must be a non-empty list")
    limit = current_app.config["ALT_TEXT"].max_images
    if len(images) > limit:
        return None, error(413, "too_many_images", f"at most {limit} images per request, got {len(images)}")
    return images, None


@api.post("/alt-text")
def describe_many():
    images, err = _images_from_body()
    if err:
        return err
    return jsonify({"results": _state()["service"].describe(images, client_key())})


@api.get("/alt-text")
def describe_one():
    url = request.args.get("url")
    if not url:
        return error(400, "invalid_url", "give the image URL as ?url=...")
    result = _state()["service"].describe([{"url": url}], client_key())[0]
    status = result["error"]["status"] if "error" in result else 200
    return jsonify({"results": [result]}), status


@api.get("/limits")
def limits():
    return jsonify(current_app.config["ALT_TEXT"].limits())


@ops.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz():
    service = _state()["service"]
    if service is None or not service.worker._thread.is_alive():
        return jsonify({"status": "not ready", "reason": "model not loaded"}), 503
    if service.closing:
        return jsonify({"status": "not ready", "reason": "shutting down"}), 503
    runner = service.runner
    if isinstance(runner, ModelProcess) and runner.start_error and not runner.alive():
        return jsonify({"status": "not ready", "reason": f"model process: {runner.start_error}"}), 503
    d = service.describer
    return jsonify({"status": "ready", "model": service.model_version, "device": service.device,
                    "pipeline": d.namespace, "ocr": d.ocr_available, "honesty_heads": d.heads is not None,
                    "limits": current_app.config["ALT_TEXT"].limits(),
                    "cache": {"state": service.cache.state, "reason": service.cache.reason}})


@ops.get("/metrics")
def metrics():
    return Response(_state()["metrics"].render(), content_type=CONTENT_TYPE)


@ops.get("/openapi.json")
def openapi():
    return jsonify(openapi_spec())


def create_app(config: Config | None = None, captioner=None, describer=None) -> Flask:
    """Build the app. ``describer`` (or a bare ``captioner``, described without fitted heads) overrides loading
    one from ``config.checkpoint``: tests pass tiny models."""
    cfg = config or Config.from_env()
    loads_model = describer is None and captioner is None and cfg.load_model
    if loads_model:  # a service process of its own (a gunicorn worker): before it starts any thread
        tuning.keep_freed_memory()
        tuning.hand_the_gil_back_sooner()
    app = Flask(__name__)
    app.config["ALT_TEXT"] = cfg
    # werkzeug reads no more than this (a chunked body is cut off there, silently): one byte over the cap, so that
    # _check_body_size sees a body that is too long instead of a truncated one
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes + 1
    app.json.sort_keys = False
    metrics = ServiceMetrics()
    service = None
    if cfg.loopback_allowed():
        log.warning("TESTING MODE: the fetcher may reach the loopback origins %s; never run a deployment like this",
                    ", ".join(cfg.test_allow_loopback))
    in_child = loads_model and cfg.model_process  # the model runs in a child process (server/service/model_process)
    if cfg.torch_threads > 0 or in_child:  # cores / workers (alt-text serve): N processes do not oversubscribe
        import torch  # the CPU; with a model process, the worker's own torch work is the request threads' resizing

        torch.set_num_threads(1 if in_child else cfg.torch_threads)
    runner = None
    if describer is None and captioner is not None:
        describer = Describer(captioner, None, cfg.policy(), cfg.wording(),
                              Ocr() if cfg.ocr and ocr_available() else None, cfg.beam_size)
    elif loads_model:
        if in_child:  # it loads the model while this process loads its own copy (for resizing and the evidence)
            runner = ModelProcess(cfg.checkpoint, cfg.device, cfg.beam_size, cfg.torch_threads, wait=False)
        describer = Describer.load(cfg.checkpoint, device="cpu" if in_child else cfg.device,
                                   beam_size=cfg.beam_size, policy=cfg.policy(), wording=cfg.wording(),
                                   use_ocr=cfg.ocr)
        if runner is not None:
            try:
                runner.wait_ready(expect=describer.model_namespace)
            except ModelProcessError as e:  # one line, then gunicorn's "worker failed to boot", not a traceback
                log.error("%s", e)
                raise SystemExit(3) from None
    if describer is not None:
        if runner is None:
            tuning.channels_last_on_cpu(describer.captioner)
        check_cache_settings(cfg.cache, cfg.redis_url)  # a wrong setting stops the start; a broken cache does not
        cache = FailSafeCache(lambda: open_cache(cfg.cache, cfg.cache_path, cfg.redis_url, cfg.cache_ttl),
                              cooldown=cfg.cache_retry, on_change=metrics.cache_degraded.set)
        service = AltTextService(cfg, describer, cache, metrics, run_model=runner)
    app.extensions["alt_text"] = {"service": service, "metrics": metrics}

    def too_large() -> Response:
        return error(413, "body_too_large", f"the request body is larger than {cfg.max_body_bytes:,} bytes")

    # Registered before the rate limiter's own before_request, which reads the body to count its images.
    @app.before_request
    def _check_body_size():
        """The one check of the body cap, before anything reads the body: a declared Content-Length over it, or a
        body without one (chunked) that turns out longer (werkzeug reads at most one byte more than the cap). The
        body read here is kept for the limiter's count and the view."""
        if (request.content_length or 0) > cfg.max_body_bytes:
            return too_large()
        try:
            if len(request.get_data(cache=True)) > cfg.max_body_bytes:
                return too_large()
        except RequestEntityTooLarge:
            return too_large()
        return None

    # Registered before the limiter, so that it runs after the limiter's own after_request (Flask runs them in the
    # reverse order), which writes RateLimit-Reset as a timestamp and a Retry-After on every response.
    @app.after_request
    def _rate_limit_headers(resp):
        """The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): RateLimit-Reset is the seconds until
        the window resets, not a timestamp. Retry-After only where it means something: a 429 (the seconds until
        the limit lets the client in again) and a 503 that set its own (shutting_down); never on a success."""
        reset = resp.headers.get("RateLimit-Reset")
        delta = None
        if reset is not None and reset.isdigit():
            delta = int(reset)
            if delta > 1_000_000_000:  # flask-limiter's timestamp: a second late (it adds one), in whole seconds
                try:  # the window's own reset time, which the limiter has just read for its headers
                    at = limiter.current_limit.window.reset_time
                except Exception:  # noqa: BLE001 - e.g. the storage failed meanwhile: its rounded value then
                    at = delta - 1
                delta = max(0, math.ceil(at - time.time()))
            resp.headers["RateLimit-Reset"] = str(delta)
        if resp.status_code == 429:
            if delta is not None:
                resp.headers["Retry-After"] = str(max(1, delta))
            else:
                resp.headers.setdefault("Retry-After", "1")
        elif resp.status_code == 503 and g.get("retry_after") is not None:
            resp.headers["Retry-After"] = g.retry_after
        else:
            resp.headers.pop("Retry-After", None)
        return resp

    # Rate limit with flask-limiter: in Redis when ALT_TEXT_REDIS_URL is set (one limit across workers and
    # replicas), else per process; if Redis fails, each process falls back to its own memory until it returns.
    limiter = Limiter(client_key, app=app, storage_uri=cfg.redis_url or "memory://", strategy="moving-window",
                      headers_enabled=True, in_memory_fallback_enabled=bool(cfg.redis_url), swallow_errors=True,
                      key_prefix="alt-text", enabled=cfg.rate_limit > 0,
                      header_name_mapping={HeaderNames.LIMIT: "RateLimit-Limit",
                                           HeaderNames.REMAINING: "RateLimit-Remaining",
                                           HeaderNames.RESET: "RateLimit-Reset"})
    # one count per client across every endpoint of the API; CORS pre-flights carry no credentials and cost nothing
    limiter.shared_limit(f"{max(cfg.rate_limit, 1)}/minute", scope="alt-text-api", cost=images_in_request,
                         exempt_when=lambda: request.method == "OPTIONS")(api)

    # the extension reads when to ask again: a browser hides response headers that CORS does not expose
    CORS(app, resources={r"/v1/*": {"origins": [*EXTENSION_ORIGINS, *cfg.cors_origins]}},
         allow_headers=["Content-Type", "X-API-Key"], methods=["GET", "POST", "OPTIONS"], max_age=600,
         expose_headers=["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"])
    app.register_blueprint(api)
    app.register_blueprint(ops)
    if cfg.trusted_proxies:  # behind N proxies every request comes from a proxy: rate-limit the real client
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.trusted_proxies)

    @app.before_request
    def _start_timer():
        g.t0 = time.perf_counter()

    @app.after_request
    def _count(resp):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("t0", time.perf_counter()))
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        if e.code == 413:
            return too_large()
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 415: "unsupported_media_type",
                 429: "rate_limited"}
        message = f"too many images; the limit is {cfg.rate_limit} per minute" if e.code == 429 else e.description
        return error(e.code or 500, codes.get(e.code, "http_error"), message)

    @app.errorhandler(ServiceClosing)
    def _closing(e: ServiceClosing):  # close() began between the guard and the work
        return _shutting_down()

    @app.errorhandler(Overloaded)
    def _overloaded(e: Overloaded):  # the images need the model, and its backlog is full (admission.py)
        return error(503, "overloaded", f"the service is busy: {e.reason}; send the request again after "
                                        f"Retry-After seconds", **{"Retry-After": str(e.retry_after)})

    @app.errorhandler(Exception)
    def _crash(e: Exception):
        log.exception("unhandled error")
        return error(500, "internal_error", "internal error; it has been logged")

    if loads_model:
        tuning.freeze_loaded_objects()
    return app
