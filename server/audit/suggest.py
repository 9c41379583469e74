"""Suggested alt text for the audit's image findings: the model's description and how sure it is, or "probably
decorative" where the rules think the image is an ornament.

Decorative candidates (tiny, spacer files, the same image repeated on a page; ``decorative_candidate`` from the
rules) are not described: describing a spacer would be wrong advice. Image buttons and image-map links are never
called decorative, since they must say what they do. Everything else with an image file goes through the describe
pipeline (:mod:`server.describe`, the one the service runs: the same kinds, text, thresholds and wording), batched
(``batch_size`` images per model call) and cached in the service's cache (:mod:`server.cache`: image bytes hash +
pipeline namespace, plus the URL index), so a second audit of the same site costs no model time and no fetches.
Where the pipeline withholds a description, the suggestion says why and offers no text to copy.

With suggestions on, the crawl also says what the page says about every other image (``CrawlState.image_contexts``,
:class:`rules.ImageContext`): those images are described too (:meth:`Suggester.image_urls`), with the same cache,
and :meth:`Suggester.judgements` judges each against the pipeline's full result (kind, OCR text, brand, meaning,
chart type; :mod:`server.audit.judging`), which each described image keeps as ``evidence`` beside its suggestion.
``--no-suggest`` collects no contexts and describes nothing.

A control's icon (findings with ``icon``: an unnamed button or link whose only content is an image, that image,
an image button) needs a name, not a description: its suggestion is the pipeline's ``control_name`` ("Search",
"Menu") for the attribute to set, and where the pipeline has none (it is not sure), no text at all; never a
caption sentence as a control's name. An inline SVG, an icon font or an icon web component has no image file to
describe.

An unnamed graphic (rule ``graphic-unnamed``: a canvas or a role-less inline svg), or a named one to judge, has
pixels where the crawl could get them: ``--render``'s screenshot of it, else (an svg) its own markup, sanitised, as
a ``data:image/svg+xml`` URL, which :class:`ImageSource` rasterises with rsvg-convert (:mod:`server.audit.graphics`;
so does any such data: URL a page puts in an ``<img>``). The crawl keeps those pixels apart
(:class:`crawl.pixels.PixelStore`); findings name the graphic by its reference (``image_url``, the page's URL with
a fragment naming the element), which :class:`ImageSource` loads from there, and the cache and the images to
describe know it by its pixels' digest (:meth:`ImageSource.identity`: one drawing on many pages is described
once). Without pixels (a canvas without ``--render``, no rsvg-convert) its suggestion says so and offers nothing to
copy.

Where the images come from, and why there are two paths:

* Images on the audited site's own origin are fetched through the crawl's site (:class:`crawl.Site`, the fetch
  layer under the user's-own-site policy): the owner named that site, which may be private or on localhost, and
  robots.txt and the politeness delay apply to images as to pages.
* Images anywhere else (a CDN, another site) go through :func:`server.netsafe.fetch_bytes` (public-only), which
  refuses private, loopback and link-local addresses: a page can point an <img> at any URL, and the audit must not
  become a way to reach an intranet host or a cloud metadata endpoint that the owner did not name.
* ``data:`` URLs are decoded in place. Whatever the path, :class:`server.netsafe.fetch.FetchLimits` bounds the bytes,
  the time and (through :func:`server.netsafe.images.decode_image`) the pixels; redirects follow the fetch layer's
  one rule.

A failure (unreachable, not an image, too large) becomes that finding's suggestion ``{"kind": "error"}``; the
audit goes on. With ``--server`` the images are sent as bytes to ``POST /v1/alt-text`` through
:class:`server.client.ServiceClient` (as many per request as its ``/v1/limits`` allow): the service would refuse to fetch a private site's URLs itself, and the local cache needs the bytes anyway.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol
from urllib.parse import unquote_to_bytes

import requests
from PIL import Image

from server.netsafe import (IMAGE_ACCEPT, REDIRECT_STATUSES, FetchError, FetchLimits, Redirects, decode_fetched,
                            fetch_bytes)
from server.cache import Cache, NoCache, image_key
from server.describe.markup import MarkupError, check_markup, markup_name
from server.client import ServiceClient, ServiceError, image_data

from . import graphics
from .adopt import author_alt
from .crawl import FetchFailure, Site, WorkerPool, normalize_url, origin
from .crawl.pixels import PixelStore
from .judging import Judgements, judge_evidence
from .rules import CONTROL_RULES, GRAPHIC_RULE

log = logging.getLogger(__name__)

DECORATIVE_IMG = 'Probably decorative: use alt=""'
DECORATIVE_HIDE = 'Probably decorative: hide it with aria-hidden="true"'
NOT_AN_IMAGE_FILE = "No image file to describe (an inline SVG or an image-map area): write the text by hand."
NO_ICON_FILE = ("No image file to describe (an inline SVG, an icon font or an icon web component): write the name "
                "by hand.")
NOTHING_SHOWN = "The control shows nothing to describe: write its name by hand."
NO_CONTROL_NAME = "The model is not sure what this icon stands for."
NO_CANVAS_PIXELS = ("A canvas is drawn by script: the audit sees its pixels only with --render. Write its name by "
                    "hand, or mark it decorative.")
GRAPHIC_IDENTITY = "alt-text-graphic:sha256-"  # a graphic's pixels in the cache's URL index (ImageSource.identity)
NO_SVG_PIXELS = ("This inline SVG was not rasterised (rsvg-convert is not installed, or the SVG is too large): write "
                 "its name by hand, or mark it decorative.")


class SuggestError(Exception):
    """The suggestion backend cannot be used at all (the service is unreachable or not ready)."""


@dataclass
class LoadedImage:
    url: str
    image: Image.Image
    data: bytes


class Backend(Protocol):
    version: str
    cache_namespace: str

    def describe(self, images: list[LoadedImage]) -> list[dict]:
        """One cacheable record or ``{"error": {"code", "message"}}`` per image, in order."""

    def result(self, stored: dict) -> dict:
        """The pipeline's result (``alt``, ``kind``, ``confidence``, ``reason``, ...) for a record."""


# ---------------------------------------------------------------------------------------------------------------
# Backends


class LocalBackend:
    """The describe pipeline in this process (a :class:`server.describe.Describer`). Records are its evidence, so
    the decision and the wording are made fresh from the cache, as in the service."""

    def __init__(self, describer):
        self.describer = describer
        self.version = str(describer.captioner.version)
        self.cache_namespace = describer.namespace

    def describe(self, images: list[LoadedImage]) -> list[dict]:
        return [e.to_dict() for e in self.describer.evidence([i.image for i in images])]

    def result(self, stored: dict) -> dict:
        from server.describe import Evidence

        return self.describer.decide(Evidence.from_dict(stored))


class ServiceBackend:
    """A running alt-text service (``alt-text serve``), through :class:`server.client.ServiceClient`. The model
    version comes from its /readyz, so that the local cache never mixes two models' answers."""

    KEEP = ("alt", "kind", "text", "caption", "confidence", "raw_confidence", "hedged", "withheld", "reason",
            "control_name", "concepts", "meaning", "brand", "chart_type")

    def __init__(self, server_url: str, api_key: str | None = None, timeout: float = 120.0,
                 session: requests.Session | None = None):
        self.client = ServiceClient(server_url, api_key, timeout=timeout, session=session)
        try:
            ready = self.client.ready()
        except ServiceError as e:
            raise SuggestError(e.message) from None
        self.client.limits()  # read before the crawl, as readiness is
        self.version = "service:" + str(ready["model"])
        # The service's results depend on its pipeline and settings too: its namespace says which pipeline.
        self.cache_namespace = "service:" + str(ready.get("pipeline") or ready["model"])

    def _post(self, batch: list[dict]) -> list[dict]:
        try:
            results = self.client.post(batch)
        except ServiceError as e:
            code = "service_error" if e.status is not None else "service_unreachable"
            return [_error(code, e.message)] * len(batch)
        return [res if "error" in res else {k: res.get(k) for k in self.KEEP} for res in results]

    def describe(self, images: list[LoadedImage]) -> list[dict]:
        batches = self.client.batches([image_data(img.data) for img in images])
        return [res for batch in batches for res in self._post(batch)]

    def result(self, stored: dict) -> dict:
        return stored  # the service decided already, with its own settings


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


# ---------------------------------------------------------------------------------------------------------------
# Images


class ImageSource:
    """Fetches an image for captioning along the paths in the module docstring. ``graphics``: the crawl's pixels of
    its graphics (:class:`crawl.pixels.PixelStore`), which their references (``image_url``) are loaded from."""

    def __init__(self, site: Site | None, origins: list[str], limits: FetchLimits, graphics: PixelStore | None = None):
        self.site, self.origins, self.limits = site, origins, limits  # the crawl's list: it grows on redirects
        self.graphics = graphics

    def identity(self, url: str) -> str:
        """What the image is known by in the cache and among the images to describe: its URL, or for a graphic's
        reference what its pixels are (the same drawing on several pages is one image)."""
        digest = self.graphics.digest(url) if self.graphics is not None else None
        return url if digest is None else f"{GRAPHIC_IDENTITY}{digest}"

    def _decode(self, url: str, data: bytes) -> LoadedImage:
        return LoadedImage(url, decode_fetched(data, self.limits.max_pixels), data)

    def _svg(self, url: str, data: bytes) -> LoadedImage:
        """An SVG (an unnamed graphic's markup, or a data: URL of a page's <img>), rasterised: the PNG is what is
        described, cached and sent to a service."""
        try:
            png = graphics.rasterise_svg(data)
        except graphics.RasterError as e:
            raise FetchError(e.code, e.message, 422) from None
        return self._decode(url, png)

    def _data_url(self, url: str) -> bytes:
        if len(url) > self.limits.max_bytes * 4 // 3 + 1024:
            raise FetchError("too_large", f"the image is larger than {self.limits.max_bytes:,} bytes", 413)
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise FetchError("invalid_url", "the data: URL has no comma", 400)
        try:
            if header.lower().endswith(";base64"):
                text = re.sub(r"\s+", "", unquote_to_bytes(payload).decode("ascii"))
                return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)  # browsers allow no padding
            return unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            raise FetchError("invalid_data", "the data: URL is not valid base64", 400) from None

    def _load_data(self, url: str, data_url: str) -> LoadedImage:
        media = data_url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        data = self._data_url(data_url)
        return self._svg(url, data) if media == graphics.SVG_MEDIA_TYPE else self._decode(url, data)

    def _from_site(self, url: str) -> bytes:
        """Same-origin hops through the crawl's site (robots.txt and the politeness delay apply); a redirect
        elsewhere continues through the public-only fetch. Hops follow the fetch layer's one redirect rule."""
        redirects = Redirects(url, self.limits.max_redirects)
        while True:
            current = redirects.current
            if origin(current) not in self.origins:
                return fetch_bytes(current, self.limits)[0]
            if not self.site.allowed(current):
                raise FetchError("robots_disallowed", "robots.txt disallows fetching this image", 403)
            try:
                r = self.site.get(current, self.limits.max_bytes, timeout=self.limits.total_timeout,
                                  accept=IMAGE_ACCEPT)
            except FetchFailure as e:
                raise FetchError(e.kind, e.message, 504 if e.kind == "timeout" else 502) from None
            if r.status in REDIRECT_STATUSES:
                location = redirects.location(r.status, r.headers.get("Location"))
                target = normalize_url(location) if location else None
                if target is None:
                    raise FetchError("bad_redirect", f"HTTP {r.status} without a usable Location", 502)
                redirects.follow(target)
                continue
            if r.status != 200:
                raise FetchError("upstream_status", f"the image server answered HTTP {r.status}", 502)
            if r.truncated:
                raise FetchError("too_large", f"the image is larger than {self.limits.max_bytes:,} bytes", 413)
            return r.body

    def load(self, url: str) -> LoadedImage:
        """The decoded image and its bytes; raises FetchError."""
        if self.graphics is not None and url in self.graphics:
            pixels = self.graphics.get(url)
            if pixels is None:
                raise FetchError("no_pixels", "the graphic's pixels were not kept", 404)
            return self._load_data(url, pixels)
        if url.lower().startswith("data:"):
            return self._load_data(url, url)
        norm = normalize_url(url)
        if norm is None:
            raise FetchError("unsupported_scheme", "only http, https and data: image URLs can be described", 400)
        if self.site is not None and origin(norm) in self.origins:
            return self._decode(url, self._from_site(norm))
        return self._decode(url, fetch_bytes(norm, self.limits)[0])


# ---------------------------------------------------------------------------------------------------------------
# Findings -> suggestions


def _element(finding: dict) -> str:
    match = re.match(r"\s*<([A-Za-z][\w:-]*)", finding.get("snippet") or "")
    return match.group(1).lower() if match else ""


def decorative_suggestion(finding: dict) -> dict | None:
    """The "probably decorative" advice for a finding the rules marked as a decorative candidate, else None."""
    if not finding.get("decorative_candidate"):
        return None
    element = _element(finding)
    if finding["rule"] in ("input-image-alt", "area-alt") or element in ("input", "area"):
        return None  # controls need a name, however small their picture
    if element in ("img", ""):
        return {"kind": "decorative", "alt": "", "message": DECORATIVE_IMG}
    return {"kind": "decorative", "alt": None, "message": DECORATIVE_HIDE}


def _caption_suggestion(result: dict, version: str) -> dict:
    """The pipeline's result as a suggestion: its ``alt`` as is (no hedge added here), or why there is none."""
    from server.describe import reason_message

    if "error" in result:
        err = result["error"]
        return {"kind": "error", "code": str(err.get("code", "error")), "message": str(err.get("message", ""))}
    common = {"image_kind": str(result.get("kind") or "unknown"), "caption": result.get("caption") or "",
              "confidence": round(float(result.get("confidence") or 0.0), 4), "model": version}
    name = result.get("control_name")  # absent from pipelines before it, null when the pipeline is not sure
    if isinstance(name, str) and name.strip():
        common["control_name"] = " ".join(name.split())  # for finding_suggestion; not part of the suggestion
        said = author_alt(result)
        if said and said["basis"] in ("meaning", "brand") and said["confidence"] is not None:
            common["control_confidence"] = said["confidence"]  # likewise
    alt = (result.get("alt") or "").strip()
    if not alt:
        reason = result.get("reason") or "no_description"
        return {"kind": "withheld", "alt": None, "reason": reason, "message": reason_message(reason), **common}
    # alt: what a listener hears (hedged); suggested_alt: what an author can adopt, with the number it rests on
    adopt = author_alt(result) or {"text": None, "confidence": None, "basis": None}
    return {"kind": "caption", "alt": alt, "hedged": bool(result.get("hedged")), "suggested_alt": adopt["text"],
            "suggested_confidence": adopt["confidence"], "confidence_basis": adopt["basis"], **common}


def _name_attribute(finding: dict) -> str:
    """Where a control's name goes: alt on its icon image (or image button) itself, aria-label on a button or link."""
    return "alt" if finding["rule"] in ("image-alt", "input-image-alt") else "aria-label"


def markup_suggestion(finding: dict) -> dict | None:
    """A control's icon named by what the page's code calls it (``Finding.markup``: Font Awesome's "fa-house", a
    Material Symbols ligature, a sprite's "#icon-search"), without the model: the name the service would give it
    (:func:`server.describe.markup.markup_name`). An image file's names are not read here: only its pixels can say
    whether "home.png" is an icon or a photo. None without such a name."""
    if not finding.get("icon"):
        return None
    try:
        found = markup_name(check_markup(finding.get("markup") or {}), without_pixels=True)
    except MarkupError:
        return None
    if found is None:
        return None
    attribute, name = _name_attribute(finding), found.meaning.label
    return {"kind": "name", "name": name, "attribute": attribute, "source": "markup",
            "message": f'Suggested {attribute}="{name}", from the name the page\'s code gives the icon '
                       f'({found.source} "{found.name}"): check that it says what the control does.'}


def finding_suggestion(finding: dict, described: dict) -> dict:
    """An image's suggestion (as :func:`_caption_suggestion` made it) as one finding needs it: for a control's
    icon, the pipeline's control name for the attribute that names the control (alt on the image itself,
    aria-label on a button or link) or, without one, nothing to copy; for any other image, its description."""
    common = {k: v for k, v in described.items() if k not in ("control_name", "control_confidence", "evidence")}
    if not finding.get("icon") or common["kind"] == "error":
        return common
    name = described.get("control_name")
    if name is None:
        return {"kind": "withheld", "alt": None, "reason": "no_control_name", "message": NO_CONTROL_NAME,
                **{k: common[k] for k in ("confidence", "model", "image_kind", "caption")}}
    attribute = _name_attribute(finding)
    extra = {"confidence": described["control_confidence"]} if "control_confidence" in described else {}
    return {"kind": "name", "name": name, "attribute": attribute, "model": common["model"],
            "image_kind": common["image_kind"], **extra,
            "message": f'Suggested {attribute}="{name}", from what the icon stands for: check that it says what the '
                       "control does."}


THUMBNAIL_PX = 96  # the HTML report's embedded thumbnails: JPEG, at most this wide and high
THUMBNAILS_MAX_BYTES = 32_000_000  # ... and at most this much of them in all (the rest have no preview)
THUMBNAIL_NAMESPACE = f"audit-thumbnail:{THUMBNAIL_PX}"  # cached with the captions: a cached audit has them too


def thumbnail(image: Image.Image, size: int = THUMBNAIL_PX) -> str | None:
    """A small JPEG of the image as a data: URL (transparency on white), or None if it cannot be made."""
    import io

    try:
        im = image.copy()
        im.thumbnail((size, size))
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            back = Image.new("RGB", im.size, (255, 255, 255))
            back.paste(im, mask=im.getchannel("A"))
            im = back
        elif im.mode != "RGB":
            im = im.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=70, optimize=True)
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety
        log.debug("no thumbnail", exc_info=True)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Suggester:
    """Findings in, one suggestion per finding out: unique image URLs are fetched in parallel, looked up in the
    cache, and the misses captioned ``batch_size`` at a time. Each image fetched for that also leaves a small
    thumbnail in :attr:`thumbnails` (image URL -> data: URL) for the HTML report, cached beside its caption (an
    image answered from the cache by its URL is not fetched again, and its thumbnail comes from there too)."""

    def __init__(self, backend: Backend | None, source: ImageSource | None, cache: Cache | None = None,
                 batch_size: int = 16, concurrency: int = 4):
        self.backend, self.source, self.cache = backend, source, cache or NoCache()
        self.batch_size, self.concurrency = batch_size, concurrency
        self.thumbnails: dict[str, str] = {}
        self._thumb_bytes = 0

    def _keep_thumbnail(self, url: str, thumb) -> bool:
        if not isinstance(thumb, str) or self._thumb_bytes >= THUMBNAILS_MAX_BYTES:
            return False
        self.thumbnails[url] = thumb
        self._thumb_bytes += len(thumb)
        return True

    def _load(self, url: str) -> tuple[LoadedImage, str | None]:
        loaded = self.source.load(url)
        return loaded, (thumbnail(loaded.image) if self._thumb_bytes < THUMBNAILS_MAX_BYTES else None)

    def suggestion_for(self, finding: dict, described: Mapping[str, dict]) -> dict | None:
        """A finding's suggestion: decorative or "no image file" from the finding alone, else its image URL's
        entry in ``described`` (what :meth:`describe_urls` filled in; None while it is missing, or with no
        backend). A report calls this per finding as it streams them, so only one entry per image is held."""
        decorative = decorative_suggestion(finding) or markup_suggestion(finding)
        if decorative:
            return decorative
        if not finding.get("image_url"):
            if finding["rule"] == GRAPHIC_RULE:
                message = NO_CANVAS_PIXELS if _element(finding) == "canvas" else NO_SVG_PIXELS
            else:
                message = (NO_ICON_FILE if finding.get("icon") else NOTHING_SHOWN
                           if finding["rule"] in CONTROL_RULES else NOT_AN_IMAGE_FILE)
            return {"kind": "none", "message": message}
        found = described.get(finding["image_url"]) if self.backend is not None else None
        return finding_suggestion(finding, found) if found is not None else None

    def image_urls(self, findings: Iterable[dict], contexts: Iterable[dict] = ()) -> list[str]:
        """The image URLs the model is asked about, each once, in the order the findings first name them, then
        those of the image contexts (the images to judge) not named yet: one pass over each (a store on disk is
        streamed)."""
        if self.backend is None:
            return []
        urls: dict[str, None] = {}
        for f in findings:
            if f.get("image_url") and not decorative_suggestion(f) and not markup_suggestion(f):
                urls[f["image_url"]] = None
        for c in contexts:
            urls[c["image_url"]] = None
        return list(urls)

    def judgements(self, contexts: Iterable[dict], described: Mapping[str, dict]) -> Judgements | None:
        """The image judgements (:class:`judging.Judgements`) of the image contexts, on the evidence each described
        image keeps (images not described yet are not judged); None with no backend."""
        if self.backend is None:
            return None
        return Judgements(lambda url: (described.get(url) or {}).get("evidence"),
                          self.backend.version).judge_images(contexts)

    def describe_urls(self, urls: list[str], on_progress: Callable[[int], None] | None = None,
                      into: dict | None = None) -> dict:
        """One suggestion per image URL, ``batch_size`` at a time; ``into`` is filled in place as batches finish,
        so that an interrupted run keeps the suggestions it already has."""
        out = into if into is not None else {}
        if not urls:
            return out
        same: dict[str, list[str]] = {}  # an image's identity -> its URLs (a graphic on several pages: one image)
        for url in urls:
            same.setdefault(self._identity(url), []).append(url)
        firsts = [group[0] for group in same.values()]
        with WorkerPool(self.concurrency, "audit-images") as pool:
            for start in range(0, len(firsts), self.batch_size):
                chunk = firsts[start:start + self.batch_size]
                done = 0
                for url, suggestion in zip(chunk, self._describe(chunk, pool)):
                    group = same[self._identity(url)]
                    for other in group:
                        out[other] = suggestion
                        if other != url and url in self.thumbnails:
                            self.thumbnails[other] = self.thumbnails[url]  # the same string
                    done += len(group)
                if on_progress:
                    on_progress(done)
        return out

    def _identity(self, url: str) -> str:
        identity = getattr(self.source, "identity", None)  # a source of only URLs (tests' fakes): the URL
        return identity(url) if identity is not None else url

    def plan(self, findings: Iterable[dict]) -> tuple[list[dict | None], dict[str, list[int]]]:
        """Suggestions that need no model (decorative, no image file) and the findings per image URL that do."""
        out: list[dict | None] = []
        by_url: dict[str, list[int]] = {}
        for i, f in enumerate(findings):
            out.append(self.suggestion_for(f, {}))
            if out[i] is None and self.backend is not None:
                by_url.setdefault(f["image_url"], []).append(i)
        return out, by_url

    def suggest(self, findings: Iterable[dict], on_progress: Callable[[int], None] | None = None,
                into: list | None = None) -> list[dict | None]:
        """One suggestion per finding, as a list (None when there is no backend, i.e. --no-suggest). ``into`` is
        filled in place as batches finish. For a crawl's findings on disk, :meth:`image_urls`,
        :meth:`describe_urls` and :meth:`suggestion_for` keep only one suggestion per image in memory."""
        findings = list(findings)
        out, by_url = self.plan(findings)
        if into is not None:
            into[:] = out
            out = into

        class Spread(dict):  # each image's suggestion, given to its findings as its batch finishes
            def __setitem__(self, url, suggestion):
                for i in by_url[url]:
                    out[i] = finding_suggestion(findings[i], suggestion)

        self.describe_urls(list(by_url), on_progress, into=Spread())
        return out

    def _describe(self, urls: list[str], pool: WorkerPool) -> list[dict]:
        # The audit's own cache namespace: it fetches private addresses, which the service (sharing the same
        # cache file by default) must never answer for; and results depend on the beam size.
        version = "audit:" + getattr(self.backend, "cache_namespace", self.backend.version)
        cache = self.cache
        results: dict[str, dict] = {}
        futures = {}
        for url in urls:
            known = self._identity(url)  # a graphic's pixels, not its place on a page
            hit = cache.get_url(known, version)
            if hit:
                results[url] = hit
                self._keep_thumbnail(url, (cache.get_url(known, THUMBNAIL_NAMESPACE) or {}).get("thumbnail"))
            else:
                futures[url] = pool.submit(self._load, url)
        todo: list[tuple[str, LoadedImage]] = []
        for url, fut in futures.items():
            try:
                loaded, thumb = fut.result()
            except FetchError as e:
                results[url] = _error(e.code, e.message)
                continue
            except Exception as e:  # noqa: BLE001 - one image's bug is that image's error
                log.debug("loading %s failed", url, exc_info=True)
                results[url] = _error("fetch_failed", f"the image could not be fetched ({type(e).__name__})")
                continue
            known = self._identity(url)
            if self._keep_thumbnail(url, thumb):
                thumb_key = image_key(loaded.data, THUMBNAIL_NAMESPACE)
                cache.put(thumb_key, {"thumbnail": thumb})
                cache.put_url(known, THUMBNAIL_NAMESPACE, thumb_key)
            key = image_key(loaded.data, version)
            hit = cache.get(key)
            if hit:
                cache.put_url(known, version, key)
                results[url] = hit
            else:
                todo.append((key, loaded))
        if todo:
            try:
                described = self.backend.describe([loaded for _, loaded in todo])
            except Exception as e:  # noqa: BLE001 - a model failure costs this batch its captions, not the audit
                log.warning("the model failed on a batch of %d images: %s", len(todo), e)
                log.debug("model failure", exc_info=True)
                described = [_error("model_error", f"the model failed ({type(e).__name__})")] * len(todo)
            for (key, loaded), res in zip(todo, described):
                if "error" not in res:
                    cache.put(key, res)
                    cache.put_url(self._identity(loaded.url), version, key)
                results[loaded.url] = res
        out = []
        for res in (results[url] for url in urls):
            result = res if "error" in res else self.backend.result(res)
            suggestion = _caption_suggestion(result, self.backend.version)
            evidence = judge_evidence(result)  # what the judgements read: kept beside the suggestion
            out.append(suggestion if evidence is None else {**suggestion, "evidence": evidence})
        return out
