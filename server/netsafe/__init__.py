"""Fetching and decoding what strangers send: URLs that must not reach private networks, bytes that must not
exhaust memory. Everything that fetches a URL (the service, the CLI, the audit) or decodes an untrusted image goes
through here, and nothing here knows about captions.

One module per concept: :mod:`.limits` (every limit), :mod:`.errors` (the one error type), :mod:`.urls` (which URLs,
host names by UTS-46), :mod:`.addresses` (which addresses are public), :mod:`.policy` (public-only or the user's own
site), :mod:`.redirects` (the one redirect rule), :mod:`.deadline` and :mod:`.body` (the byte cap under a
deadline), :mod:`.fetch` (the transport and :class:`Fetcher`), :mod:`.images` (decoding within limits).
"""

from .addresses import check_public_without_dns
from .errors import FetchError
from .fetch import IMAGE_ACCEPT, Fetcher, Response, decode_fetched, fetch_bytes, fetch_image
from .images import ImageError, decode_image, read_image_file
from .limits import DEFAULT_LIMITS, MAX_REDIRECTS, MAX_URL_LENGTH, FetchLimits
from .policy import OWN_SITE, PUBLIC_ONLY, Policy
from .redirects import REDIRECT_STATUSES, Redirects
from .urls import check_url, encode_host

__all__ = ["DEFAULT_LIMITS", "FetchError", "FetchLimits", "Fetcher", "IMAGE_ACCEPT", "ImageError", "MAX_REDIRECTS",
           "MAX_URL_LENGTH", "OWN_SITE", "PUBLIC_ONLY", "Policy", "REDIRECT_STATUSES", "Redirects", "Response",
           "check_public_without_dns", "check_url", "decode_fetched", "decode_image", "encode_host", "fetch_bytes",
           "fetch_image", "read_image_file"]
