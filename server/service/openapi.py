"""The OpenAPI 3.1 description of the service, served at /openapi.json (clients and schemathesis read it)."""
from __future__ import annotations

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "examples": ["unsupported_format", "blocked_address", "too_many_pixels"]},
        "message": {"type": "string"},
        "status": {"type": "integer", "description": "the HTTP status this error would have on its own"}}}},
}
_LIMITS = {"max_images": "images per request", "max_body_bytes": "request body, base64 included",
           "max_image_bytes": "one image's bytes", "max_pixels": "one image's pixels"}
_NUM01 = {"type": "number", "minimum": 0, "maximum": 1}
_SOURCE = {"enum": ["image", "text", "markup"],
           "description": "where the name comes from: the image's pixels (the meaning head), the text OCR read in "
                          "it, or the page's code (the request's markup)"}
_MARKUP = {"type": "object", "additionalProperties": False,
           "description": "what the page's code calls the image, when it is the only content of a button or link: "
                          "the names icon sets give their glyphs. A name the vocabulary knows names the icon (\"Icon: "
                          "Search.\", meaning.source \"markup\"), unless the pixels show a photo or nothing; an "
                          "image file's names (file given) only when they show an icon. Never cached with the image.",
           "properties": {
               "class": {"type": "string", "maxLength": 300, "examples": ["fa-solid fa-magnifying-glass"],
                         "description": "the classes of the icon element and of its ancestors up to the "
                                        "control, the icon's first (an icon font's, an svg's)"},
               "ligature": {"type": "string", "maxLength": 300, "examples": ["shopping_cart"],
                            "description": "the word a ligature icon font draws as one glyph"},
               "symbol": {"type": "string", "maxLength": 300, "examples": ["#icon-search", "mdi:home"],
                          "description": "an svg's <use href>, or an icon element's data-icon / icon attribute"},
               "file": {"type": "string", "maxLength": 300, "examples": ["/static/icons/home.svg"],
                        "description": "the image file's URL or name"}}}
_DESCRIPTION = {
    "type": "object",
    "required": ["alt", "kind", "text", "caption", "confidence", "raw_confidence", "concepts", "hedged", "withheld",
                 "reason", "out_of_domain", "ocr", "meaning", "brand", "chart_type", "control_name", "cached",
                 "model", "elapsed_ms"],
    "properties": {
        "alt": {"type": ["string", "null"],
                "description": "exactly what to put in the page, already saying it is machine-made and how sure it is "
                               "(\"Appears to be: a dog on a beach.\", \"Appears to say: “Summer sale”\", "
                               "\"Screenshot.\"); null when nothing reliable can be said (see reason). Show it as "
                               "is: never add a second hedge."},
        "kind": {"enum": ["photo", "text", "screenshot", "chart", "icon", "logo", "illustration", "blank",
                          "unknown"],
                 "description": "what kind of image the pipeline decided this is"},
        "text": {"type": ["string", "null"], "description": "text read in the image by OCR (confident words only)"},
        "caption": {"type": "string", "description": "the captioner's own sentence, spoken only for in-domain photos"},
        "confidence": {**_NUM01, "description": "calibrated probability that the caption is acceptable"},
        "raw_confidence": {**_NUM01, "description": "geometric mean token probability of the caption"},
        "concepts": {"type": "array", "description": "what the encoder's ImageNet classifier sees, in plain words",
                     "items": {"type": "object", "required": ["word", "label", "p"],
                               "properties": {"word": {"type": "string"}, "label": {"type": "string"},
                                              "p": _NUM01}}},
        "hedged": {"type": "boolean", "description": "the caption is spoken with the stronger hedge"},
        "withheld": {"type": "boolean", "description": "alt is null"},
        "reason": {"type": ["string", "null"],
                   "enum": ["out_of_domain", "low_confidence", "uncertain_kind", "blank", None],
                   "description": "why alt is null"},
        "out_of_domain": {"type": "boolean", "description": "the image is unlike the captioner's training photos"},
        "ocr": {"enum": ["read", "skipped", "unavailable"],
                "description": "whether OCR ran (skipped: text was unlikely; unavailable: no Tesseract)"},
        "meaning": {"type": ["object", "null"], "required": ["id", "label", "p"],
                    "description": "what the icon means, when the meaning head is sure or the page's markup names it "
                                   "(\"Icon: Search.\"); p is 1 for a name from markup",
                    "properties": {"id": {"type": "string", "examples": ["search", "menu", "close"]},
                                   "label": {"type": "string", "examples": ["Search"]}, "p": _NUM01,
                                   "source": _SOURCE}},
        "brand": {"type": ["object", "null"], "required": ["id", "name", "p"],
                  "description": "the brand a logo shows, from its shape, its text or the page's markup (\"Logo: "
                                 "GitHub.\"); p is 1 for a name from text or markup",
                  "properties": {"id": {"type": "string", "examples": ["github"]},
                                 "name": {"type": "string", "examples": ["GitHub"]}, "p": _NUM01,
                                 "source": _SOURCE}},
        "chart_type": {"type": ["object", "null"], "required": ["id", "label", "p"],
                       "description": "a chart's type, when the chart-type head is sure (\"Bar chart: “Sales”\")",
                       "properties": {"id": {"enum": ["bar", "line", "pie", "scatter", "histogram", "area", "table",
                                                      "flow", "map"]},
                                      "label": {"type": "string", "examples": ["Bar chart"]}, "p": _NUM01}},
        "control_name": {"type": ["string", "null"],
                         "description": "a name for a button or link whose only content is this image (\"Search\", "
                                        "\"GitHub\"); null when the image gives none. Never a caption."},
        "cached": {"type": "boolean"}, "model": {"type": "string"}, "elapsed_ms": {"type": "number"}},
}
_RESULT = {
    "oneOf": [
        _DESCRIPTION,
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
        (429, "rate limited (see Retry-After)"), (503, ("model not loaded, the service is shutting "
                                                       "down (shutting_down), or its backlog for the model is full "
                                                       "(overloaded); send it again after Retry-After"))]}
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
                                 "properties": {"url": {"type": "string", "format": "uri"}, "markup": _MARKUP}},
                                {"type": "object", "required": ["data"],
                                 "properties": {"data": {"type": "string", "contentEncoding": "base64"},
                                                "markup": _MARKUP}}]}}}}}}},
                    "responses": {"200": _json(_RESULTS, "one result per image, in order"), **errors,
                                  "415": _json(_ERROR, "the body is not JSON (Content-Type must be "
                                                       "application/json)")},
                },
                "get": {
                    "summary": "Describe one image by URL",
                    "description": "The answer is {\"results\": [one result]}; when the image fails, the HTTP "
                                   "status is its error's status (a missing url parameter: a plain error).",
                    "parameters": [{"name": "url", "in": "query", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(_RESULTS, "the result"),
                        **errors,
                        "400": _json({"oneOf": [_RESULTS, _ERROR]}, "a malformed or non-http(s) URL (results), "
                                                                    "or no url parameter (error)"),
                        "503": _json({"oneOf": [_RESULTS, _ERROR]}, "the model did not answer in time, or the "
                                                                    "service stopped while it waited (results), or "
                                                                    "the model is not loaded, the service is "
                                                                    "shutting down or overloaded (error, with "
                                                                    "Retry-After)"),
                        **{str(status): _json(_RESULTS, why) for status, why in (
                            (403, "a private, loopback or link-local address, or robots-like refusal"),
                            (413, "the image is too large"), (422, "the image could not be read"),
                            (502, "the image server failed"), (504, "the image server did not answer in time"))},
                    },
                },
            },
            "/v1/limits": {"get": {"summary": "The request limits this deployment enforces", "responses": {
                "200": _json({"type": "object", "required": list(_LIMITS), "properties": {
                    k: {"type": "integer", "minimum": 1, "description": d} for k, d in _LIMITS.items()}},
                    "send at most max_images per request and max_body_bytes per body"),
                "401": errors["401"], "429": errors["429"]}}},
            "/healthz": {"get": {"summary": "Process is up", "responses": {"200": {"description": "up"}}}},
            "/readyz": {"get": {"summary": "Model is loaded", "responses": {
                "200": {"description": "ready"},
                "503": {"description": "not ready: no model, or shutting down (take it out of the load balancer)"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "text exposition format", "content": {"text/plain": {}}}}}},
        },
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
    }
