/* Which image URLs the service can fetch itself. Everything else (blob:, data:, this computer, the local network)
 * is sent as bytes read in the page: the service refuses non-public addresses, and sending intranet URLs to a
 * remote service would leak internal host names for nothing. */

const LOCAL_SUFFIXES = [".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".corp"];

function isPrivateIPv4(host) {
  const m = host.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
}

function isPrivateIPv6(host) {
  if (!host.startsWith("[")) return false;
  const h = host.slice(1, -1).toLowerCase();
  return h === "::1" || h === "::" || /^f[cd]/.test(h) || /^fe[89ab]/.test(h) || h.startsWith("::ffff:");
}

/** True when the host is this computer or the local network (by name or address). */
export function isLocalHost(hostname) {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || LOCAL_SUFFIXES.some((s) => host.endsWith(s))) return true;
  if (isPrivateIPv4(host) || isPrivateIPv6(host)) return true;
  return !host.includes(".") && !host.startsWith("["); // a single-label intranet name
}

/** True when the service can be given this image's URL; false when the page must send the bytes. */
export function serviceCanFetch(imageUrl, testAllowLoopback = []) {
  let url;
  try {
    url = new URL(imageUrl);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (url.username || url.password) return false; // the service refuses credentials in URLs
  if (testAllowLoopback.includes(url.host)) return true;
  return !isLocalHost(url.hostname);
}

// Service error codes after which the bytes, read in the page with its cookies, may succeed.
const RETRY_WITH_BYTES = new Set([
  "blocked_address", "upstream_status", "port_not_allowed", "dns_failure", "dns_timeout", "connect_failed",
  "connect_timeout", "read_timeout", "deadline_exceeded", "tls_error", "invalid_host", "unsupported_scheme",
  "credentials_in_url", "bad_redirect", "too_many_redirects", "upstream_error", "unsupported_format",
]);

export function retryWithBytes(error) {
  return !!error && RETRY_WITH_BYTES.has(error.code);
}
