"""What a client of a running alt-text service needs to know before sending: the limits it publishes.

The CLI (``alt-text url --server``) and the audit (``--server``) size their requests by them, as the browser
extension does (``extension/service-client.js``), so a deployment with ``ALT_TEXT_MAX_IMAGES=8`` is not sent 16.
"""
from __future__ import annotations

import requests

DEFAULT_LIMITS = {"max_images": 16, "max_body_bytes": 20_000_000}  # the service's defaults, for older services


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
