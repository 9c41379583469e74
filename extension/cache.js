/* Descriptions by image URL in chrome.storage.local, so a page seen again costs no request. Only http(s) URLs are
 * cached (blob: and data: URLs are per page or are the image itself). A control's icon sent with its markup (the
 * names the page's code gives it) is kept under its URL and that markup together: the answer depends on both. Old
 * entries expire and the oldest are dropped beyond MAX_ENTRIES to stay far below the storage quota. */

const PREFIX = "cache:";
const TTL_MS = 7 * 24 * 3600 * 1000; // as the service's own URL cache: images behind a URL do change
const MAX_ENTRIES = 2000;
const PRUNE_EVERY = 100; // writes
let writes = 0;

const cacheable = (url) => /^https?:/i.test(url || "");
/** `key` made one with the markup its answer depends on (none: `key` itself). */
export const withMarkup = (key, markup) => (markup ? `${key}\n${JSON.stringify(markup)}` : key);
const keyOf = (url, markup) => PREFIX + withMarkup(url, markup);

export async function getCached(url, markup = null) {
  if (!cacheable(url)) return null;
  const key = keyOf(url, markup);
  const entry = (await chrome.storage.local.get(key))[key];
  if (!entry || Date.now() - entry.savedAt > TTL_MS) return null;
  return { ...entry.result, cached: true };
}

export async function putCached(url, result, markup = null) {
  if (!cacheable(url) || !result || result.error) return;
  const { alt, kind, text, caption, confidence, hedged, withheld, reason, model } = result;
  const { control_name = null, meaning = null, brand = null } = result; // what a button or link with it is called
  try {
    // The worker is stopped when idle, so the write counter restarts at 0: prune on its first write too.
    if (writes++ % PRUNE_EVERY === 0) await prune();
    await chrome.storage.local.set({
      [keyOf(url, markup)]: {
        savedAt: Date.now(),
        result: { alt, kind, text, caption, confidence, hedged, withheld, reason, model, control_name, meaning, brand },
      },
    });
  } catch (e) {
    // The cache only saves requests: a full or failing storage must not lose the description just received.
    console.debug("alt-text: description not cached:", e);
  }
}

export async function clearCache() {
  const keys = Object.keys(await chrome.storage.local.get(null)).filter((k) => k.startsWith(PREFIX));
  await chrome.storage.local.remove(keys);
  return keys.length;
}

async function prune() {
  const all = await chrome.storage.local.get(null);
  const entries = Object.entries(all).filter(([k]) => k.startsWith(PREFIX));
  const now = Date.now();
  entries.sort((a, b) => b[1].savedAt - a[1].savedAt); // newest first
  const drop = entries.filter(([, v], i) => i >= MAX_ENTRIES || now - v.savedAt > TTL_MS).map(([k]) => k);
  if (drop.length) await chrome.storage.local.remove(drop);
}
