/* Options page: reads and writes the settings in chrome.storage.local. Errors are shown next to their field
 * (aria-invalid, aria-describedby) and every outcome is said in the status live region. */

import { clearCache } from "./cache.js";
import { checkService } from "./service-client.js";
import { DEFAULTS, getSettings, normaliseServiceUrl } from "./settings.js";

const $ = (id) => document.getElementById(id);
const form = $("options");
let disabledSites = [];

function say(text) {
  const status = $("status");
  status.textContent = "";
  setTimeout(() => { status.textContent = text; }, 50); // the same message twice is announced twice
}

function fieldError(id, message) {
  const input = $(id);
  const error = $(`${id}-error`);
  input.setAttribute("aria-invalid", message ? "true" : "false");
  error.textContent = message || "";
  error.hidden = !message;
  return !message;
}

async function load() {
  const s = await getSettings();
  $("serviceUrl").value = s.serviceUrl;
  $("apiKey").value = s.apiKey;
  $(s.automatic ? "mode-automatic" : "mode-on-demand").checked = true;
  $("prefix").value = s.prefix;
  $("minSize").value = s.minSize;
  disabledSites = [...s.disabledSites];
  renderSites();
  const command = (await chrome.commands.getAll()).find((c) => c.name === "describe-focused-image");
  $("shortcut").textContent = (command && command.shortcut) ||
    "(no shortcut set: choose one in the browser's extension shortcuts)";
}

function renderSites() {
  const list = $("sites");
  list.replaceChildren(...disabledSites.map((site) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Turn back on";
    button.setAttribute("aria-label", `Turn back on for ${site}`);
    button.addEventListener("click", () => {
      setSites(disabledSites.filter((s) => s !== site), `Turned back on for ${site}.`);
    });
    item.append(site, button);
    return item;
  }));
  list.hidden = disabledSites.length === 0;
  $("no-sites").hidden = disabledSites.length > 0;
}

async function setSites(sites, message) {
  disabledSites = sites;
  await chrome.storage.local.set({ disabledSites });
  renderSites();
  say(message);
}

/** "https://www.example.org/page" or "WWW.Example.org" -> "www.example.org"; null if it is not a host name. */
function hostOf(text) {
  const value = text.trim().toLowerCase();
  if (!value) return null;
  try {
    return new URL(value.includes("://") ? value : `http://${value}`).hostname || null;
  } catch {
    return null;
  }
}

$("addSite").addEventListener("click", async () => {
  const host = hostOf($("newSite").value);
  if (!fieldError("newSite", host ? "" : "Type a site such as www.example.org.")) return $("newSite").focus();
  $("newSite").value = "";
  if (disabledSites.includes(host)) return say(`It is already off for ${host}.`);
  await setSites([...disabledSites, host].sort(), `Turned off for ${host}.`);
});
$("newSite").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault(); // Enter here adds the site rather than saving the whole form
    $("addSite").click();
  }
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const serviceUrl = normaliseServiceUrl($("serviceUrl").value);
  const minSize = Number($("minSize").value);
  const urlOk = fieldError("serviceUrl", serviceUrl ? "" : "Type an address starting with http:// or https://.");
  const sizeOk = fieldError("minSize", Number.isInteger(minSize) && minSize >= 1 && minSize <= 1000
    ? "" : "Type a whole number from 1 to 1000.");
  if (!urlOk || !sizeOk) {
    $(urlOk ? "minSize" : "serviceUrl").focus();
    return say("Not saved: fix the marked field.");
  }
  await chrome.storage.local.set({
    serviceUrl,
    apiKey: $("apiKey").value.trim(),
    automatic: $("mode-automatic").checked,
    prefix: $("prefix").value.trim(), // empty is a choice: the service's wording already says it is machine-made
    minSize,
  });
  $("serviceUrl").value = serviceUrl;
  say("Saved.");
});

$("check").addEventListener("click", async () => {
  const serviceUrl = normaliseServiceUrl($("serviceUrl").value);
  if (!fieldError("serviceUrl", serviceUrl ? "" : "Type an address starting with http:// or https://.")) {
    return $("serviceUrl").focus();
  }
  say("Testing…");
  const result = await checkService(serviceUrl, $("apiKey").value.trim());
  say(result.message);
});

$("clearCache").addEventListener("click", async () => {
  const n = await clearCache();
  say(n === 1 ? "Forgot 1 saved description." : `Forgot ${n} saved descriptions.`);
});

load();
