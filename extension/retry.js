/* When a refused POST /v1/alt-text is sent again, and after how long: the rules of the Python client
 * (server/client.py, urllib3's Retry), shared with it as test vectors in tests/vectors/retry.json. The service
 * refuses a request for a while with 429 (rate limited) or 503 (overloaded, shutting_down, model_not_loaded), and
 * says in Retry-After when to come back. Pure: no browser API, so node tests it as it is. */

export const RETRY = Object.freeze({
  statuses: [429, 503], // and a 413 that says Retry-After (the server calls it temporary)
  retries: 3, // requests sent again, at most: 4 in all
  maxWaitS: 30, // a longer Retry-After is waited this long
  backoffS: 0.5, // without Retry-After: 0, 1, 2 s before the 1st, 2nd, 3rd retry
  jitterS: 1, // up to this much more, at random, so that refused requests do not all come back at once
});

const SECONDS = /^\s*[0-9]+\s*$/;
const HTTP_DATE = /^\s*[A-Za-z]{3},\s+\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}:\d{2}\s+GMT\s*$/; // IMF-fixdate

/** Retry-After as seconds from `nowMs` (0 for a date gone by), or null when it is neither seconds nor a date. */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (SECONDS.test(value)) return Number(value.trim());
  const at = HTTP_DATE.test(value) ? Date.parse(value) : NaN;
  return Number.isNaN(at) ? null : Math.max(0, (at - nowMs) / 1000);
}

/**
 * The seconds to wait before sending again a request refused with `status` and `retryAfter` (the header's
 * value, null when absent), `failures` being the refused answers so far with this one; null: give up.
 */
export function retryWait(status, retryAfter, failures, nowMs = Date.now()) {
  const told = retryAfter !== null && retryAfter !== undefined;
  if (!RETRY.statuses.includes(status) && !(status === 413 && told && retryAfter !== "")) return null;
  if (failures > RETRY.retries) return null;
  const seconds = told ? parseRetryAfter(retryAfter, nowMs) : 0;
  if (seconds === null) return null; // a Retry-After that says nothing readable
  if (seconds > 0) return Math.min(seconds, RETRY.maxWaitS);
  return failures <= 1 ? 0 : RETRY.backoffS * 2 ** (failures - 1);
}

/** The wait in milliseconds, with its jitter: never less than `seconds`. */
export function withJitter(seconds, random = Math.random) {
  return Math.round((seconds + random() * RETRY.jitterS) * 1000);
}
