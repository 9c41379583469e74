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
 */
async function describeImage({ url, data }) {
  const settings = await getSettings();
  if (!data) {
    const hit = await getCached(url);
    if (hit) return hit;
    if (!serviceCanFetch(url, settings.testAllowLoopback)) return { needBytes: true };
    const result = await describe({ url });
    if (retryWithBytes(result.error)) return { needBytes: true, error: result.error };
    await putCached(url, result);
    return result;
  }
  const result = await describe({ data });
  await putCached(url, result); // keyed by the page's URL for the image, so the bytes are not sent again
  return result;
}

const handlers = {
  describe: (message) => describeImage(message),
  // A cached answer for a URL, or null: asked before anything else, so a known image costs no request at all.
  cached: ({ url }) => getCached(url),
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
    let hostname = "";
    try {
      hostname = new URL(info.pageUrl).hostname;
    } catch {
      // no page address: treated as a site that is on
    }
    if (!siteEnabled(await getSettings(), hostname)) return;
    let result = await describeImage({ url: info.srcUrl });
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
