"""The OpenAPI 3.1 description of the service, served at /openapi.json (clients and schemathesis read it)."""
from __future__ import annotations

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "examples": ["unsupported_format", "blocked_address", "too_many_pixels"]},
        "message": {"type": "string"},
        "status": {"type": "integer", "description": "the HTTP status this error would have on its own"}}}},
}
_RESULT = {
    "oneOf": [
        {"type": "object", "required": ["alt", "confidence", "cached", "model", "elapsed_ms"], "properties": {
            "alt": {"type": ["string", "null"],
                    "description": "text for the alt attribute; hedged when unsure, null when withheld"},
            "caption": {"type": "string", "description": "the model's caption, before hedging"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "geometric mean token probability of the caption"},
            "hedged": {"type": "boolean"}, "withheld": {"type": "boolean"},
            "cached": {"type": "boolean"}, "model": {"type": "string"}, "elapsed_ms": {"type": "number"}}},
        {"allOf": [_ERROR, {"type": "object", "properties": {"elapsed_ms": {"type": "number"}}}]},
    ]
}
_RESULTS = {"type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": _RESULT}}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_spec() -> dict:
    errors = {str(s): _json(_ERROR, d) for s, d in [
        (400, "malformed request"), (401, "missing or wrong API key"), (413, "too many images or body too large"),
        (429, "rate limited (see Retry-After)"), (503, "model not loaded")]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "alt-text", "version": "1",
                 "description": "Alt text for images published without it. Each result is independent: one bad "
                                "image gives an error entry, never a failed request."},
        "paths": {
            "/v1/alt-text": {
                "post": {
                    "summary": "Describe several images, by URL or by base64 bytes",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["images"], "properties": {"images": {
                            "type": "array", "minItems": 1, "items": {"oneOf": [
                                {"type": "object", "required": ["url"],
                                 "properties": {"url": {"type": "string", "format": "uri"}}},
                                {"type": "object", "required": ["data"],
                                 "properties": {"data": {"type": "string", "contentEncoding": "base64"}}}]}}}}}}},
                    "responses": {"200": _json(_RESULTS, "one result per image, in order"), **errors},
                },
                "get": {
                    "summary": "Describe one image by URL",
                    "parameters": [{"name": "url", "in": "query", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json(_RESULTS, "the result"),
                                  "422": _json(_RESULTS, "the image could not be fetched or read"), **errors},
                },
            },
            "/healthz": {"get": {"summary": "Process is up", "responses": {"200": {"description": "up"}}}},
            "/readyz": {"get": {"summary": "Model is loaded", "responses": {
                "200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "text exposition format", "content": {"text/plain": {}}}}}},
        },
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
    }
