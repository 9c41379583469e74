/* Background service worker (an event page in Firefox): answers the content scripts, owns the URL cache and the
 * queue to the service, and wires the "Describe image" context-menu item and the keyboard command. */

import { serviceCanFetch, retryWithBytes } from "./addresses.js";
import { getCached, putCached } from "./cache.js";
import { describe } from "./service-client.js";
import { getSettings, siteEnabled } from "./settings.js";

const MENU_ID = "describe-image";

chrome.runtime.onInstalled.addListener(async () => {
  await chrome.contextMenus.removeAll(); // an update keeps the old items: creating them again would fail
  chrome.contextMenus.create({ id: MENU_ID, title: "Describe image", contexts: ["image"] });
});

/**
 * One image for a content script: {url} first; the answer {needBytes: true} asks it to send {url, data} instead
 * (the service cannot fetch the URL, or tried and failed). Returns the service's result or {error}.
 * `markup`: the names a control's icon has in the page's code; the answer depends on them too, and is cached under
 * both.
 * `stillWanted`: whether the page that asked still waits for it (asked before a refused request is sent again).
 */
async function describeImage({ url, data, markup }, stillWanted = null) {
  const settings = await getSettings();
  const extra = markup ? { markup } : {};
  if (!data) {
    const hit = await getCached(url, markup);
    if (hit) return hit;
    if (!serviceCanFetch(url, settings.testAllowLoopback)) return { needBytes: true };
    const result = await describe({ url, ...extra }, stillWanted);
    if (retryWithBytes(result.error)) return { needBytes: true, error: result.error };
    await putCached(url, result, markup);
    return result;
  }
  const result = await describe({ data, ...extra }, stillWanted);
  await putCached(url, result, markup); // keyed by the page's URL for the image: the bytes are not sent again
  return result;
}

const PROBE_MS = 1000; // how long one page's answer to "still waiting?" holds for the other images it asked for
const probes = new Map(); // "tab:frame:page" -> promise of its answer

/**
 * Whether the page that sent `message` still waits for its answer: the site is still on, and the same document
 * in the same frame says it still wants answers of that page generation (`message.page`: a page that went, was
 * replaced, or was turned off answers no, or not at all).
 */
function askerStillWants(message, sender) {
  return async () => {
    if (!siteEnabled(await getSettings(), hostnameOf(sender.url))) return false;
    if (!sender.tab || !message.page) return true;
    const key = `${sender.tab.id}:${sender.frameId || 0}:${message.page}`;
    if (!probes.has(key)) {
      probes.set(key, chrome.tabs.sendMessage(sender.tab.id, { type: "still-wanted", page: message.page },
        { frameId: sender.frameId || 0 }).then((answer) => answer === true, () => false));
      setTimeout(() => probes.delete(key), PROBE_MS);
    }
    return probes.get(key);
  };
}

/** The host name of a page address; "" when it has none (treated as a site that is on). */
function hostnameOf(address) {
  try {
    return new URL(address).hostname;
  } catch {
    return "";
  }
}

const handlers = {
  describe: (message, sender) => describeImage(message, askerStillWants(message, sender)),
  // A cached answer for a URL, or null: asked before anything else, so a known image costs no request at all.
  cached: ({ url, markup }) => getCached(url, markup),
  settings: async ({ hostname }) => {
    const s = await getSettings();
    return { enabled: siteEnabled(s, hostname), automatic: s.automatic, prefix: s.prefix, minSize: s.minSize };
  },
};

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const type = message && message.type;
  const handler = Object.hasOwn(handlers, type) ? handlers[type] : null;
  if (!handler) return false;
  const failed = (e) => sendResponse({ error: { code: "extension_error", message: String(e) } });
  handler(message, sender).then(sendResponse, failed);
  return true; // answer asynchronously
});

chrome.contextMenus.onClicked.addListener(async (info, tab) => {
  if (info.menuItemId !== MENU_ID || !tab) return;
  const message = { type: "describe-image", srcUrl: info.srcUrl };
  try {
    await chrome.tabs.sendMessage(tab.id, message, { frameId: info.frameId || 0 });
  } catch {
    // No content script in that frame (a subframe, or a page opened before install): describe by URL and
    // announce in the top frame if it has one.
    const hostname = hostnameOf(info.pageUrl);
    if (!siteEnabled(await getSettings(), hostname)) return;
    let result = await describeImage({ url: info.srcUrl }, async () => siteEnabled(await getSettings(), hostname));
    if (result.needBytes) {
      result = { error: { code: "needs_page", message: "Only the page can read this image, and it is not ready." } };
    }
    await chrome.tabs.sendMessage(tab.id, { type: "announce", result }, { frameId: 0 }).catch(() => {});
  }
});

chrome.commands.onCommand.addListener(async (command, tab) => {
  if (command !== "describe-focused-image") return;
  const target = tab || (await chrome.tabs.query({ active: true, currentWindow: true }))[0];
  if (target) await chrome.tabs.sendMessage(target.id, { type: "describe-focused" }, { frameId: 0 }).catch(() => {});
});
