"""A client of a running alt-text service, for the CLI (``alt-text url --server``) and the audit (``--server``):
the limits it publishes, whether it is ready, and describing images in requests sized by those limits.

Requests that the service refuses for a while (429 rate limited, 503 warming up or draining) are retried, waiting
as its ``Retry-After`` says, up to a cap; urllib3's ``Retry`` does the counting and the waiting. The browser
extension's ``extension/service-client.js`` does the same in JavaScript.
"""
from __future__ import annotations

import base64
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_LIMITS = {"max_images": 16, "max_body_bytes": 20_000_000}  # the service's defaults, for older services
RETRY_STATUSES = (429, 503)
RETRIES = 3  # requests sent again after a 429 or 503
MAX_RETRY_WAIT = 30  # seconds: a longer Retry-After is waited this long
BODY_SHARE = 0.6  # of max_body_bytes, for the images' base64; the rest is the JSON around them


class ServiceError(Exception):
    """The service could not be reached, or answered something other than results."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status


def service_limits(server_url: str, headers: dict | None = None, session=None) -> dict:
    """The limits a running service publishes at /v1/limits; its defaults when it cannot say."""
    try:
        r = (session or requests).get(server_url.rstrip("/") + "/v1/limits", headers=headers or {}, timeout=10)
        body = r.json() if r.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        body = {}
    if not isinstance(body, dict):  # not this service answering
        body = {}
    out = dict(DEFAULT_LIMITS)
    for k in out:
        if isinstance(body.get(k), int) and not isinstance(body[k], bool) and body[k] > 0:
            out[k] = body[k]
    return out


class ServiceClient:
    """One running service at ``server_url`` (``X-API-Key`` when ``api_key``)."""

    def __init__(self, server_url: str, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = RETRIES, max_retry_wait: float = MAX_RETRY_WAIT,
                 session: requests.Session | None = None):
        self.base = server_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["X-API-Key"] = api_key
        retry = Retry(total=retries, connect=0, read=0, redirect=0, status=retries, status_forcelist=RETRY_STATUSES,
                      allowed_methods=None, respect_retry_after_header=True, retry_after_max=max_retry_wait,
                      backoff_factor=0.5, raise_on_status=False)
        # Only the describing requests are retried: readiness must fail fast, and the limits have defaults.
        self.session.mount(self.base + "/v1/alt-text", HTTPAdapter(max_retries=retry))
        self._limits: dict | None = None

    def limits(self) -> dict:
        """``max_images`` and ``max_body_bytes`` per request, as the service publishes them (read once)."""
        if self._limits is None:
            self._limits = service_limits(self.base, session=self.session)
        return self._limits

    def ready(self) -> dict:
        """The service's /readyz answer (``model``, ``pipeline``, ...); ServiceError unless it is ready."""
        try:
            r = self.session.get(self.base + "/readyz", timeout=10)
        except requests.RequestException as e:
            raise ServiceError(f"cannot reach the service at {self.base}: {type(e).__name__}") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200 or not isinstance(body, dict) or not body.get("model"):
            reason = body.get("reason") if isinstance(body, dict) else None
            raise ServiceError(f"the service at {self.base} is not ready (HTTP {r.status_code}"
                               f"{': ' + str(reason) if reason else ''})", r.status_code)
        return body

    def batches(self, images: list[dict]) -> Iterator[list[dict]]:
        """``images`` (``{"url": ...}`` or ``{"data": base64}``) in requests of at most ``max_images`` and a
        body the service accepts."""
        limits = self.limits()
        most, room = limits["max_images"], int(limits["max_body_bytes"] * BODY_SHARE)
        batch, size = [], 0
        for image in images:
            cost = len(image.get("data") or image.get("url") or "")
            if batch and (len(batch) == most or size + cost > room):
                yield batch
                batch, size = [], 0
            batch.append(image)
            size += cost
        if batch:
            yield batch

    def post(self, batch: list[dict]) -> list[dict]:
        """One ``POST /v1/alt-text``: one result (or ``{"error": ...}``) per image, in order. Retries 429 and 503
        as told; ServiceError when the service cannot be reached or does not answer with results."""
        try:
            r = self.session.post(self.base + "/v1/alt-text", json={"images": batch}, timeout=self.timeout)
        except requests.RequestException as e:
            raise ServiceError(f"cannot reach the service at {self.base}: {e}") from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code != 200 or not isinstance(body, dict) or len(body.get("results") or ()) != len(batch):
            error = body.get("error") if isinstance(body, dict) else None
            reason = error.get("message") if isinstance(error, dict) else None
            raise ServiceError(f"the service answered HTTP {r.status_code}: {reason or r.text[:200]}", r.status_code)
        return body["results"]

    def describe(self, images: list[dict]) -> list[dict]:
        """Every image's result, in order, in as few requests as the limits allow."""
        return [result for batch in self.batches(images) for result in self.post(batch)]


def image_data(data: bytes) -> dict:
    """An image's bytes as the service takes them."""
    return {"data": base64.b64encode(data).decode("ascii")}
