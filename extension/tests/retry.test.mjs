// The retry rules (retry.js) on the vectors shared with the Python client, and the service client
// (service-client.js) against a fake fetch with mocked timers: a refused request is sent again after Retry-After,
// only with the images someone still waits for, while other requests go on.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, mock, test } from "node:test";

import { RETRY, parseRetryAfter, retryWait, withJitter } from "../retry.js";
import { describe } from "../service-client.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../tests/vectors/retry.json", import.meta.url), "utf8"));

test("the policy is the one the shared vectors state", () => {
  const { statuses, retries, max_wait_s: maxWaitS, backoff_s: backoffS, jitter_s: jitterS } = VECTORS.policy;
  assert.deepEqual({ statuses, retries, maxWaitS, backoffS, jitterS }, { ...RETRY });
});

test("the shared retry vectors: which refusals are sent again, and after how long", () => {
  assert.ok(VECTORS.cases.length > 20);
  for (const c of VECTORS.cases) {
    const wait = retryWait(c.status, c.retry_after, c.failures, VECTORS.now * 1000);
    assert.equal(wait, c.retry ? c.wait_s : null, c.why);
  }
});

test("Retry-After is seconds or an HTTP date, nothing else", () => {
  const now = Date.UTC(2025, 0, 1);
  assert.equal(parseRetryAfter("5", now), 5);
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:02 GMT", now), 2);
  for (const odd of ["", "1.5", "-1", "2025", "tomorrow", "Jan 1 2025"]) {
    assert.equal(parseRetryAfter(odd, now), odd === "2025" ? 2025 : null, odd);
  }
});

test("the jitter only ever adds, at most jitter_s", () => {
  assert.equal(withJitter(1, () => 0), 1000);
  assert.equal(withJitter(30, () => 0.5), 30_500);
  assert.ok(withJitter(0, () => 0.999) < RETRY.jitterS * 1000);
});

// ---- the client, against a fake service -------------------------------------------------------------------

let service; // {url, posts: [[spec...]], answer(images, n) -> Response}
let serviceCount = 0;

/** A fake service at a fresh address (the client reads /v1/limits once per address). `answer(images, n)` gives
 * the nth POST's Response; `maxImages` is what it publishes. */
function fakeService(answer, maxImages = 16) {
  service = { url: `http://alt-text-${++serviceCount}.test`, posts: [], answer };
  globalThis.chrome = { storage: { local: { get: async () => ({ serviceUrl: service.url }) } } };
  globalThis.fetch = async (url, init = {}) => {
    if (url.endsWith("/v1/limits")) return json(200, { max_images: maxImages, max_body_bytes: 20_000_000 });
    const images = JSON.parse(init.body).images;
    service.posts.push(images);
    return service.answer(images, service.posts.length);
  };
}

const json = (status, body, headers = {}) => new Response(JSON.stringify(body), { status, headers });
const described = (images) => json(200, { results: images.map((i) => ({ alt: `Appears to be: ${i.url}.` })) });
const overloaded = (retryAfter = "1") => json(503, { error: { code: "overloaded", message: "busy" } },
  { "Retry-After": retryAfter });

/** Lets the client's promises run (fetch, JSON) without moving the mocked clock. */
async function settle() {
  for (let i = 0; i < 30; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Moves the mocked clock by `ms`, letting promises run on the way. */
async function elapse(ms) {
  await settle();
  mock.timers.tick(ms);
  await settle();
}

/** Whether a promise has settled yet, without waiting for it. */
async function done(promise) {
  const pending = Symbol("pending");
  return (await Promise.race([promise, settle().then(() => pending)])) !== pending;
}

beforeEach(() => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  mock.method(Math, "random", () => 0.5); // jitter: half a second
});

afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

test("a 503 overloaded is sent again after its Retry-After, and the image gets its description", async () => {
  fakeService((images, n) => (n === 1 ? overloaded("1") : described(images)));
  const result = describe({ url: "https://example.org/a.png" });
  await elapse(50); // gathered, sent, refused
  assert.equal(service.posts.length, 1);
  await elapse(1499); // Retry-After 1 and half a second of jitter
  assert.equal(service.posts.length, 1);
  await elapse(1);
  assert.equal(service.posts.length, 2);
  assert.deepEqual(await result, { alt: "Appears to be: https://example.org/a.png." });
});

test("429 and 503 shutting_down are sent again too; the wait is capped at 30 s", async () => {
  fakeService((images, n) => [json(429, { error: { code: "rate_limited" } }, { "Retry-After": "600" }),
    json(503, { error: { code: "shutting_down" } }, { "Retry-After": "1" }), described(images)][n - 1]);
  const result = describe({ url: "https://example.org/b.png" });
  await elapse(50);
  await elapse(30_499);
  assert.equal(service.posts.length, 1);
  await elapse(1);
  assert.equal(service.posts.length, 2);
  await elapse(1500);
  assert.equal(service.posts.length, 3);
  assert.equal((await result).alt, "Appears to be: https://example.org/b.png.");
});

test("after three retries the images are given up, with the service's error and nothing else", async () => {
  fakeService(() => overloaded("2"));
  const result = describe({ url: "https://example.org/c.png" });
  await elapse(50);
  for (let i = 0; i < 3; i++) await elapse(2500);
  assert.equal(service.posts.length, 4);
  assert.deepEqual(await result, { error: { code: "overloaded", message: "busy", status: 503 } });
  await elapse(60_000);
  assert.equal(service.posts.length, 4); // no tight loop, no fifth request
});

test("a refusal that is not for a while (401) is not sent again", async () => {
  fakeService(() => json(401, { error: { code: "unauthorized", message: "a key" } }, { "Retry-After": "1" }));
  const result = describe({ url: "https://example.org/d.png" });
  await elapse(50);
  assert.deepEqual(await result, { error: { code: "unauthorized", message: "a key", status: 401 } });
  await elapse(10_000);
  assert.equal(service.posts.length, 1);
});

test("other requests go on while a refused one waits", async () => {
  fakeService((images, n) => (n === 1 ? overloaded("10") : described(images)));
  const first = describe({ url: "https://example.org/first.png" });
  await elapse(50);
  const second = describe({ url: "https://example.org/second.png" });
  await elapse(50);
  assert.equal((await second).alt, "Appears to be: https://example.org/second.png.");
  assert.equal(await done(first), false);
  await elapse(10_500);
  assert.equal((await first).alt, "Appears to be: https://example.org/first.png.");
  assert.deepEqual(service.posts.map((images) => images.map((i) => i.url)), [
    ["https://example.org/first.png"], ["https://example.org/second.png"], ["https://example.org/first.png"]]);
});

test("only the refused request's images are sent again: none that was answered", async () => {
  // One image a request: the first is described at once, the second refused once.
  fakeService((images) => (images[0].url.endsWith("two.png") && service.posts.length === 2
    ? overloaded("1") : described(images)), 1);
  const one = describe({ url: "https://example.org/one.png" });
  const two = describe({ url: "https://example.org/two.png" });
  await elapse(50);
  assert.equal((await one).alt, "Appears to be: https://example.org/one.png.");
  await elapse(1500);
  assert.equal((await two).alt, "Appears to be: https://example.org/two.png.");
  assert.deepEqual(service.posts.flat().map((i) => i.url).sort(), [
    "https://example.org/one.png", "https://example.org/two.png", "https://example.org/two.png"]);
});

test("an image nobody waits for any more is not sent again", async () => {
  fakeService((images, n) => (n === 1 ? overloaded("1") : described(images)));
  let pageOpen = true;
  const gone = describe({ url: "https://example.org/gone.png" }, async () => pageOpen);
  const kept = describe({ url: "https://example.org/kept.png" }, async () => true);
  // The same URL asked by a page that went and by one still open: it is still wanted.
  describe({ url: "https://example.org/shared.png" }, async () => false);
  const shared = describe({ url: "https://example.org/shared.png" }, async () => true);
  await elapse(50);
  pageOpen = false; // the page closed, or the site was turned off, while the request waited
  await elapse(1500);
  assert.deepEqual(await gone, { error: { code: "not_wanted", message: "Nobody waits for this description any more." } });
  assert.equal((await kept).alt, "Appears to be: https://example.org/kept.png.");
  assert.equal((await shared).alt, "Appears to be: https://example.org/shared.png.");
  assert.deepEqual(service.posts.map((images) => images.map((i) => i.url)), [
    ["https://example.org/gone.png", "https://example.org/kept.png", "https://example.org/shared.png"],
    ["https://example.org/kept.png", "https://example.org/shared.png"]]);
});

test("when nobody waits any more, nothing is sent again", async () => {
  fakeService(() => overloaded("1"));
  const result = describe({ url: "https://example.org/closed.png" }, async () => false);
  await elapse(50);
  await elapse(1500);
  assert.equal((await result).error.code, "not_wanted");
  assert.equal(service.posts.length, 1);
});
