/* Action popup: turns the extension off or on for the current site. The host name comes from the page's content
 * script, so the extension needs no "tabs" permission to read tab addresses. */

import { getSettings } from "./settings.js";

const $ = (id) => document.getElementById(id);

async function main() {
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  const answer = tab && (await chrome.tabs.sendMessage(tab.id, { type: "hostname" }, { frameId: 0 }).catch(() => null));
  if (!answer || !answer.hostname) {
    $("unavailable").hidden = false;
    return;
  }
  const host = answer.hostname;
  const settings = await getSettings();
  $("host").textContent = host;
  $("enabled").checked = !settings.disabledSites.includes(host);
  $("site-switch").hidden = false;
  $("enabled").addEventListener("change", async (e) => {
    const { disabledSites } = await getSettings();
    const others = disabledSites.filter((s) => s !== host);
    await chrome.storage.local.set({ disabledSites: e.target.checked ? others : [...others, host].sort() });
    $("status").textContent = e.target.checked
      ? `On for ${host}.`
      : `Off for ${host}; its images are as the page made them.`;
  });
}

main();
