"""What the crawl learns of a site's URLs: the links and frames of a page, and the pages its sitemaps list."""
from __future__ import annotations

import zlib
from collections import deque
from typing import Iterable
from urllib.parse import urljoin

from bs4 import BeautifulSoup
from lxml import etree

from ..rules import parse
from .site import FetchFailure, Site
from .urls import normalize_url


def _is_image_element(el) -> bool:
    if el.name in ("img", "svg") or el.get("role") == "img":
        return True
    if el.name == "input":
        return (el.get("type") or "").lower() == "image"
    return el.name == "object" and el.has_attr("data")


def extract_links(html, page_url: str) -> tuple[list[str], int]:
    """(URLs of the links and frames in document order, resolved against <base>; number of image elements).

    ``html`` is the markup or the tree :func:`server.audit.rules.parse` made of it (the crawler parses each page
    once, for its links and for the rules)."""
    soup = html if isinstance(html, BeautifulSoup) else parse(html)
    base_el = soup.find("base", href=True)
    base = page_url
    if base_el is not None:
        try:
            base = urljoin(page_url, (base_el.get("href") or "").strip())
        except ValueError:
            pass
    links, images = [], 0
    for el in soup.find_all(True):
        if el.name in ("a", "area", "iframe", "frame"):
            ref = el.get("href") if el.name in ("a", "area") else el.get("src")
            url = normalize_url(ref, base) if ref else None
            if url is not None:
                links.append(url)
        images += _is_image_element(el)
    return links, images


_XML_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_sitemap(data: bytes, max_bytes: int) -> tuple[str, list[str]]:
    """("urlset" or "sitemapindex", the <loc> URLs). Gzipped files are inflated under ``max_bytes``; the XML
    parser never expands entities, loads DTDs or touches the network (no billion laughs, no XXE). Raises
    ValueError for anything that is not a sitemap."""
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, max_bytes + 1)
        except zlib.error:
            raise ValueError("the gzip data is corrupt") from None
        if len(data) > max_bytes:
            raise ValueError(f"the sitemap is larger than {max_bytes:,} bytes once inflated")
    try:
        root = etree.fromstring(data, etree.XMLParser(**_XML_PARSER_OPTIONS))
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    if root is None or not isinstance(root.tag, str):
        raise ValueError("not a sitemap")
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"not a sitemap (the root element is <{kind}>)")
    child = "url" if kind == "urlset" else "sitemap"
    locs = []
    for entry in root:
        if isinstance(entry.tag, str) and etree.QName(entry).localname == child:
            for loc in entry:
                if isinstance(loc.tag, str) and etree.QName(loc).localname == "loc" and loc.text:
                    locs.append(loc.text.strip())
    return kind, locs


def read_sitemaps(site: Site, sitemap_urls: Iterable[str], explicit: set[str]) -> list[tuple[str, str]]:
    """(page URL, sitemap URL) for every page the sitemaps list, following sitemap indexes. Failures are recorded
    in ``site.site_errors``; an auto-discovered /sitemap.xml that does not exist is not a failure."""
    cfg = site.config
    todo, done, pages = deque(sitemap_urls), set(), []
    while todo and len(done) < cfg.max_sitemaps:
        url = todo.popleft()
        if url in done:
            continue
        done.add(url)

        def fail(message: str) -> None:
            site.site_errors.append({"url": url, "kind": "sitemap", "message": message})

        try:
            r = site.get(url, max_bytes=cfg.max_sitemap_bytes, follow_redirects=True)
        except FetchFailure as e:
            fail(e.message)
            continue
        if r.status != 200:
            if url in explicit or r.status not in (404, 410):
                fail(f"HTTP {r.status}")
            continue
        if r.truncated:
            fail(f"the sitemap is larger than {cfg.max_sitemap_bytes:,} bytes")
            continue
        try:
            kind, locs = parse_sitemap(r.body, cfg.max_sitemap_bytes)
        except ValueError as e:
            fail(str(e))
            continue
        for loc in locs:
            norm = normalize_url(loc)
            if norm is None:
                continue
            if kind == "sitemapindex":
                explicit.add(norm)  # listed by the site: a missing one is an error
                todo.append(norm)
            else:
                pages.append((norm, url))
    if todo:
        site.site_errors.append({"url": todo[0], "kind": "sitemap",
                                 "message": f"more than {cfg.max_sitemaps} sitemaps: the rest were not read"})
    return pages
