/* Talks to the alt-text service. Images asked for within GATHER_MS of each other go in one POST /v1/alt-text
 * (at most the service's max_images and about half its body limit of JSON, as it publishes them at /v1/limits),
 * so a page of images costs a few requests, and the service can describe them in one forward pass. Only image
 * URLs or bytes are sent, and for a control's icon the names its markup gives it (`markup`): no cookies, no page
 * text. A request the service refuses for a while (429, 503
 * overloaded or shutting_down) is sent again after its Retry-After, by the rules of retry.js, with only the images
 * that someone still waits for; other requests go on meanwhile. */

import { withMarkup } from "./cache.js";
import { retryWait, withJitter } from "./retry.js";
import { getSettings } from "./settings.js";

const GATHER_MS = 50;
const MAX_IMAGES = 16; // gathered before a flush; sent in requests of at most the service's own limit
const MAX_BODY_CHARS = 12_000_000; // under the service's default 20 MB body limit
const DEFAULT_LIMITS = { maxImages: 16, maxBodyChars: MAX_BODY_CHARS }; // an older service publishes none
const TIMEOUT_MS = 60_000;
const KEEPALIVE_MS = 20_000; // an extension API call this often while a retry waits: the browser stops an idle worker
const NOT_WANTED = { code: "not_wanted", message: "Nobody waits for this description any more." };

let limits = null; // {serviceUrl, maxImages, maxBodyChars}: read once per worker start and service address

let queue = []; // {spec, resolve, promise, askers}
let timer = null;
const inFlight = new Map(); // image URL (and markup) -> its queued item, so duplicates share one request

/**
 * Resolves to the service's result for one image: {alt, caption, ...} or {error: {code, message}}.
 * `stillWanted`, when given, is an async () => boolean that says whether the asker (a page) still waits for the
 * answer; it is asked before a refused request is sent again, and an image that nobody waits for is left out.
 */
export function describe(spec, stillWanted = null) {
  const byUrl = spec.url && !spec.data;
  const key = withMarkup(spec.url, spec.markup);
  const shared = byUrl ? inFlight.get(key) : null;
  if (shared) {
    shared.askers.push(stillWanted);
    return shared.promise;
  }
  const item = { spec, askers: [stillWanted] };
  item.promise = new Promise((resolve) => { item.resolve = resolve; });
  queue.push(item);
  if (queue.length >= MAX_IMAGES) flush();
  else timer ??= setTimeout(flush, GATHER_MS);
  if (byUrl) {
    inFlight.set(key, item);
    item.promise.finally(() => inFlight.get(key) === item && inFlight.delete(key));
  }
  return item.promise;
}

function flush() {
  clearTimeout(timer);
  timer = null;
  const batch = [];
  let chars = 0;
  while (queue.length && batch.length < MAX_IMAGES) {
    const size = (queue[0].spec.data || queue[0].spec.url || "").length;
    if (batch.length && chars + size > MAX_BODY_CHARS) break;
    batch.push(queue.shift());
    chars += size;
  }
  if (queue.length) timer = setTimeout(flush, 0);
  post(batch).catch((e) => batch.forEach((item) => item.resolve(failure("extension_error", String(e)))));
}

/** The service's published limits (GET /v1/limits), or the defaults when it publishes none. */
async function serviceLimits(settings, headers) {
  if (limits && limits.serviceUrl === settings.serviceUrl && limits.apiKey === settings.apiKey) return limits;
  let published = {};
  try {
    const r = await fetch(`${settings.serviceUrl}/v1/limits`, {
      headers, credentials: "omit", cache: "no-store", signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) return DEFAULT_LIMITS; // a wrong key, a busy service: ask again next time, keep nothing
    published = await r.json();
  } catch {
    // unreachable: the POST will say so; the defaults are used meanwhile
    return DEFAULT_LIMITS;
  }
  const positive = (n) => Number.isInteger(n) && n > 0;
  limits = {
    serviceUrl: settings.serviceUrl,
    apiKey: settings.apiKey,
    maxImages: positive(published.max_images) ? published.max_images : DEFAULT_LIMITS.maxImages,
    maxBodyChars: positive(published.max_body_bytes)
      ? Math.min(MAX_BODY_CHARS, Math.floor(published.max_body_bytes * 0.6)) : MAX_BODY_CHARS,
  };
  return limits;
}

function requestHeaders(settings) {
  const headers = { "Content-Type": "application/json" };
  if (settings.apiKey) headers["X-API-Key"] = settings.apiKey;
  return headers;
}

async function post(batch) {
  const settings = await getSettings();
  const { maxImages, maxBodyChars } = await serviceLimits(settings, requestHeaders(settings));
  const chunks = [[]];
  let chars = 0;
  for (const item of batch) {
    const size = (item.spec.data || item.spec.url || "").length;
    const last = chunks[chunks.length - 1];
    if (last.length && (last.length >= maxImages || chars + size > maxBodyChars)) {
      chunks.push([]);
      chars = 0;
    }
    chunks[chunks.length - 1].push(item);
    chars += size;
  }
  await Promise.all(chunks.map((chunk) => postChunk(chunk, settings)));
}

/** One request's images, sent again while the service refuses them for a while and someone still waits for them. */
async function postChunk(batch, settings) {
  for (let failures = 1; ; failures++) {
    const refused = await sendChunk(batch, settings);
    if (!refused) return;
    const wait = retryWait(refused.status, refused.retryAfter, failures);
    // Given up (or not to be sent again): every image in it failed the same way, and is not cached, so a later
    // page load asks again.
    if (wait === null) return batch.forEach((item) => item.resolve({ error: refused.error }));
    await sleep(withJitter(wait));
    const wanted = await Promise.all(batch.map(stillWanted));
    batch.filter((item, i) => !wanted[i]).forEach((item) => item.resolve({ error: NOT_WANTED }));
    batch = batch.filter((item, i) => wanted[i]);
    if (!batch.length) return;
    settings = await getSettings(); // the address or key may have changed meanwhile
  }
}

/** Sends the images once and resolves them with their results; returns {status, retryAfter, error} instead when
 * the request as a whole was refused (401 bad key, 429 slow down, 503 busy...), leaving them unresolved. */
async function sendChunk(batch, settings) {
  const body = JSON.stringify({ images: batch.map((item) => item.spec) });
  let response;
  try {
    response = await fetch(`${settings.serviceUrl}/v1/alt-text`, {
      method: "POST", headers: requestHeaders(settings), body, credentials: "omit", referrerPolicy: "no-referrer",
      cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    const why = e.name === "TimeoutError" ? "did not answer in time" : "cannot be reached";
    batch.forEach((item) => item.resolve(failure("service_unreachable",
      `The alt-text service at ${settings.serviceUrl} ${why}.`)));
    return null;
  }
  const answer = await response.json().catch(() => null);
  const results = answer && Array.isArray(answer.results) ? answer.results : null;
  if (results && results.length === batch.length) {
    batch.forEach((item, i) => item.resolve(results[i]));
    return null;
  }
  const error = (answer && answer.error) || { code: "service_error", message: `HTTP ${response.status}` };
  return { status: response.status, retryAfter: response.headers.get("Retry-After"),
    error: { ...error, status: response.status } };
}

/** Whether anyone who asked for this image still waits for it (one who gave no way to ask always does). */
async function stillWanted(item) {
  const answers = await Promise.all(item.askers.map((asker) => (asker ? asker().catch(() => false) : true)));
  return answers.some(Boolean);
}

/** Waits `ms`, calling an extension API now and then, so that the browser does not stop the worker meanwhile. */
function sleep(ms) {
  return new Promise((resolve) => {
    const runtime = globalThis.chrome && chrome.runtime;
    const keepAlive = setInterval(() => runtime && runtime.getPlatformInfo && runtime.getPlatformInfo(() => {}),
      KEEPALIVE_MS);
    setTimeout(() => {
      clearInterval(keepAlive);
      resolve();
    }, ms);
  });
}

function failure(code, message) {
  return { error: { code, message } };
}

/** Whether the service answers, with this URL and key: POST an empty list, which it rejects with 400 only after
 * checking the key (a CORS-enabled endpoint, unlike /readyz). */
export async function checkService(serviceUrl, apiKey) {
  try {
    const r = await fetch(`${serviceUrl}/v1/alt-text`, {
      method: "POST", headers: requestHeaders({ apiKey }), body: '{"images": []}', credentials: "omit", signal: AbortSignal.timeout(10_000),
    });
    const answer = await r.json().catch(() => ({}));
    const code = answer.error && answer.error.code;
    if (r.status === 400 && code === "invalid_images") return { ok: true, message: "The service answers." };
    return { ok: false, message: (answer.error && answer.error.message) || `The service answered HTTP ${r.status}.` };
  } catch {
    return { ok: false, message: `Nothing answers at ${serviceUrl}.` };
  }
}
