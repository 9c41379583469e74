/* Talks to the alt-text service. Images asked for within GATHER_MS of each other go in one POST /v1/alt-text
 * (at most the service's max_images and about half its body limit of JSON, as it publishes them at /v1/limits),
 * so a page of images costs a few requests, and the service can describe them in one forward pass. Only image
 * URLs or bytes are sent: no cookies, no page text. */

import { getSettings } from "./settings.js";

const GATHER_MS = 50;
const MAX_IMAGES = 16; // gathered before a flush; sent in requests of at most the service's own limit
const MAX_BODY_CHARS = 12_000_000; // under the service's default 20 MB body limit
const DEFAULT_LIMITS = { maxImages: 16, maxBodyChars: MAX_BODY_CHARS }; // an older service publishes none
const TIMEOUT_MS = 60_000;

let limits = null; // {serviceUrl, maxImages, maxBodyChars}: read once per worker start and service address

let queue = []; // {spec, resolve}
let timer = null;
const inFlight = new Map(); // image URL -> promise of its result, so duplicates share one request

/** Resolves to the service's result for one image: {alt, caption, ...} or {error: {code, message}}. */
export function describe(spec) {
  const shared = spec.url && !spec.data ? inFlight.get(spec.url) : null;
  if (shared) return shared;
  const promise = new Promise((resolve) => {
    queue.push({ spec, resolve });
    if (queue.length >= MAX_IMAGES) flush();
    else timer ??= setTimeout(flush, GATHER_MS);
  });
  if (spec.url && !spec.data) {
    inFlight.set(spec.url, promise);
    promise.finally(() => inFlight.delete(spec.url));
  }
  return promise;
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

async function post(batch) {
  const settings = await getSettings();
  const headers = { "Content-Type": "application/json" };
  if (settings.apiKey) headers["X-API-Key"] = settings.apiKey;
  const { maxImages, maxBodyChars } = await serviceLimits(settings, headers);
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
  await Promise.all(chunks.map((chunk) => postChunk(chunk, settings, headers)));
}

async function postChunk(batch, settings, headers) {
  const body = JSON.stringify({ images: batch.map((item) => item.spec) });
  let response;
  try {
    response = await fetch(`${settings.serviceUrl}/v1/alt-text`, {
      method: "POST", headers, body, credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    const why = e.name === "TimeoutError" ? "did not answer in time" : "cannot be reached";
    return batch.forEach((item) => item.resolve(failure("service_unreachable",
      `The alt-text service at ${settings.serviceUrl} ${why}.`)));
  }
  const answer = await response.json().catch(() => null);
  const results = answer && Array.isArray(answer.results) ? answer.results : null;
  if (results && results.length === batch.length) {
    return batch.forEach((item, i) => item.resolve(results[i]));
  }
  // A request-level error (401 bad key, 429 slow down, 503 no model...): every image in it failed the same way.
  const error = (answer && answer.error) || { code: "service_error", message: `HTTP ${response.status}` };
  batch.forEach((item) => item.resolve({ error: { ...error, status: response.status } }));
}

function failure(code, message) {
  return { error: { code, message } };
}

/** Whether the service answers, with this URL and key: POST an empty list, which it rejects with 400 only after
 * checking the key (a CORS-enabled endpoint, unlike /readyz). */
export async function checkService(serviceUrl, apiKey) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers["X-API-Key"] = apiKey;
  try {
    const r = await fetch(`${serviceUrl}/v1/alt-text`, {
      method: "POST", headers, body: '{"images": []}', credentials: "omit", signal: AbortSignal.timeout(10_000),
    });
    const answer = await r.json().catch(() => ({}));
    const code = answer.error && answer.error.code;
    if (r.status === 400 && code === "invalid_images") return { ok: true, message: "The service answers." };
    return { ok: false, message: (answer.error && answer.error.message) || `The service answered HTTP ${r.status}.` };
  } catch {
    return { ok: false, message: `Nothing answers at ${serviceUrl}.` };
  }
}
