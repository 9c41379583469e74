/* The user's settings, kept in chrome.storage.local (not sync: the API key stays on this computer). */

export const DEFAULTS = Object.freeze({
  serviceUrl: "http://127.0.0.1:8000",
  apiKey: "",
  automatic: true, // false: describe only when asked (context menu, keyboard shortcut)
  // Words before each description: none by default, since the service's answers already say they are machine-made
  // ("Appears to be: ...", "Appears to say: ..."); a second hedge would be read twice.
  prefix: "",
  minSize: 16, // px; smaller rendered images are not described
  disabledSites: [], // host names where the extension does nothing
  // TEST ONLY, not in the options page: "host:port" loopback origins whose image URLs are sent as URLs, for a
  // service started with the matching ALT_TEXT_TEST_ALLOW_LOOPBACK. Normally local images always go as bytes.
  testAllowLoopback: [],
});

// The default of versions before 0.2, when the service's answers did not say they were machine-made.
const OLD_DEFAULT_PREFIX = "Image may show:";

export async function getSettings() {
  const s = { ...DEFAULTS, ...(await chrome.storage.local.get(Object.keys(DEFAULTS))) };
  if (s.prefix === OLD_DEFAULT_PREFIX) s.prefix = ""; // saved unchanged from the old default: not a choice
  return s;
}

export function siteEnabled(settings, hostname) {
  return !settings.disabledSites.includes(hostname);
}

/** "https://alt.example.org/" -> "https://alt.example.org"; null when it is not an http(s) URL. */
export function normaliseServiceUrl(text) {
  try {
    const url = new URL(String(text).trim());
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.href.replace(/\/+$/, "");
  } catch {
    return null;
  }
}
