// Node unit tests of the extension's pure logic (no browser, no dependencies): `node --test extension/tests/`.
// The DOM rules are tested in a real Chromium by tests/test_extension_unit.py.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import "../accessible-name.js"; // a classic script: as a module it defines globalThis.altTextNames
import { isLocalHost, retryWithBytes, serviceCanFetch } from "../addresses.js";
import { normaliseServiceUrl } from "../settings.js";

const { isSuspiciousName, cssContent, isUsableControlName } = globalThis.altTextNames;

test("file names and placeholder words are suspicious names", () => {
  for (const name of ["IMG_1234.jpg", "IMG_0042.JPG", "DSC01234", "hero-banner.png", "photo.jpeg?w=300",
    "image", "Photo", "picture", "graphic", "logo", "spacer", "Untitled", "image 1", "img-3", "  ", "",
    "Image of logo", "123", "pic.", "---", "IMG 1234.jpg", "screenshot 2023-01-05 at 10.11.12"]) {
    assert.equal(isSuspiciousName(name), true, name);
  }
});

test("real descriptions are not suspicious", () => {
  for (const name of ["A red square", "Company logo of Acme", "Sunset over the bay", "A cat", "Chart of sales 2024",
    "猫", "Our team at the 2024 offsite", "photo of a dog"]) {
    assert.equal(isSuspiciousName(name), false, name);
  }
});

test("the shared name vectors: short real names are kept, placeholders and stop words are not", () => {
  const { cases } = JSON.parse(readFileSync(new URL("../../tests/vectors/names.json", import.meta.url), "utf8"));
  assert.ok(cases.length > 20);
  for (const c of cases) assert.equal(isSuspiciousName(c.name), c.describe, c.name);
  assert.equal(isSuspiciousName("logo 2: A.B."), true);
});

test("names with digits are words; numbers and numbered placeholders are not", () => {
  for (const name of ["W3C", "W3C logo", "3M", "F1", "7-Eleven", "MP3", "4K", "H2O", "Windows 11"]) {
    assert.equal(isSuspiciousName(name), false, name);
  }
  for (const name of ["IMG3", "img 3", "photo3", "icon-24", "DSC00042", "123", "logo 2: A.B."]) {
    assert.equal(isSuspiciousName(name), true, name);
  }
});

test("an icon font's computed content is read: the glyph, its alt text, or an image", () => {
  assert.deepEqual(cssContent('"\uf002" / ""'), { text: "\uf002", alt: "" }); // Font Awesome 6-7
  assert.deepEqual(cssContent('"\uf479"'), { text: "\uf479", alt: null }); // Bootstrap Icons
  assert.deepEqual(cssContent('"\\f002"'), { text: "\uf002", alt: null }); // an escaped code point
  assert.deepEqual(cssContent('"\uf002" / "Search"'), { text: "\uf002", alt: "Search" });
  assert.deepEqual(cssContent("'Next'"), { text: "Next", alt: null });
  assert.deepEqual(cssContent('url("/icons/search.svg")'), { url: "/icons/search.svg" });
  for (const none of ["none", "normal", "", undefined, "counter(item)"]) assert.equal(cssContent(none), null);
});

test("a service's control name is used only when it names something", () => {
  for (const name of ["Search", "Menu", "GitHub", "X", "W3C", "Open menu", "Close"]) {
    assert.equal(isUsableControlName(name), true, name);
  }
  for (const name of [null, undefined, "", "  ", "Icon", "icon", "Image", "logo", "an icon", "Button", "link",
    "A man stands on a beach. He is holding a dog.", "x".repeat(61)]) {
    assert.equal(isUsableControlName(name), false, String(name));
  }
});

test("local and intranet hosts are recognised", () => {
  for (const host of ["localhost", "app.localhost", "printer.local", "10.1.2.3", "127.0.0.1", "192.168.0.10",
    "172.20.0.1", "169.254.169.254", "[::1]", "[fd00::1]", "[fe80::1]", "intranet", "wiki.corp"]) {
    assert.equal(isLocalHost(host), true, host);
  }
  for (const host of ["example.org", "8.8.8.8", "172.32.0.1", "[2001:4860::1]", "images.example.co.uk"]) {
    assert.equal(isLocalHost(host), false, host);
  }
});

test("the service gets public http(s) URLs; everything else goes as bytes", () => {
  assert.equal(serviceCanFetch("https://example.org/a.png"), true);
  assert.equal(serviceCanFetch("http://127.0.0.1:8080/a.png"), false);
  assert.equal(serviceCanFetch("http://127.0.0.1:8080/a.png", ["127.0.0.1:8080"]), true);
  assert.equal(serviceCanFetch("blob:https://example.org/0b1c"), false);
  assert.equal(serviceCanFetch("data:image/png;base64,AAAA"), false);
  assert.equal(serviceCanFetch("https://user:pw@example.org/a.png"), false);
  assert.equal(serviceCanFetch("not a url"), false);
});

test("fetch errors are retried with bytes, image errors are not", () => {
  assert.equal(retryWithBytes({ code: "blocked_address" }), true);
  assert.equal(retryWithBytes({ code: "upstream_status" }), true);
  assert.equal(retryWithBytes({ code: "too_many_pixels" }), false);
  assert.equal(retryWithBytes(undefined), false);
});

test("service URLs are normalised", () => {
  assert.equal(normaliseServiceUrl(" http://127.0.0.1:8000/ "), "http://127.0.0.1:8000");
  assert.equal(normaliseServiceUrl("https://alt.example.org/base/"), "https://alt.example.org/base");
  assert.equal(normaliseServiceUrl("ftp://x"), null);
  assert.equal(normaliseServiceUrl("127.0.0.1:8000"), null);
});
