"""Whose addresses a fetch may reach. Two policies, one per kind of permission:

* ``PUBLIC_ONLY``: a stranger chose the URL (the service's requests, an image a page points at on another site,
  ``alt-text url``). Every hop's host is resolved once and refused unless every address is public; the connection
  goes to the address checked (no second resolution, so DNS rebinding has no window), and proxies from the
  environment are ignored (a proxy would resolve the name itself). One connection per fetch.
* ``OWN_SITE``: the user named the site (``alt-text audit URL``), which is often on an intranet, a staging host or
  localhost, so any address is reached; the caller keeps the fetches on that site (the crawler's origins).
  ``HTTP(S)_PROXY`` and ``NO_PROXY`` are honoured, as intranet users may need them, except for loopback hosts,
  which no proxy could reach. Connections are kept alive between the fetches of one :class:`~server.netsafe.fetch.
  Fetcher`.

Everything else (the URL checks, the host encoding, the redirect rule, the byte cap and the deadline) is the same
under both.
"""
from __future__ import annotations

import enum


class Policy(enum.Enum):
    PUBLIC_ONLY = "public-only"
    OWN_SITE = "own-site"


PUBLIC_ONLY = Policy.PUBLIC_ONLY
OWN_SITE = Policy.OWN_SITE
