"""The one error of the fetch layer: every refusal and failure, whatever the policy, is a :class:`FetchError`.

``code`` is machine-readable and stable (the service answers with it, the extension and the audit read it),
``message`` is for people and never carries a traceback nor the addresses a name resolved to, ``status`` is the
HTTP status the service answers with.

=====================  ======  ================================================================
code                   status  meaning
=====================  ======  ================================================================
invalid_url            400     not a string, too long, whitespace/control characters or ``\\``
unsupported_scheme     400     anything but http/https (file:, ftp:, gopher:, data:, javascript:)
credentials_in_url     400     user-info (``user:pass@``) in the URL
invalid_host           400     empty or malformed host, bad IP literal, percent-encoding, zone id
invalid_port           400     port 0, above 65535 or not a number
port_not_allowed       403     port outside ``FetchLimits.allowed_ports``
blocked_address        403     the host is or resolves to a non-public address (or is ``localhost``)
dns_failure            400     the name does not resolve
dns_timeout            504     resolution did not finish within the deadline
connect_failed         502     connection refused / unreachable
connect_timeout        504     connect timeout
read_timeout           504     the server went silent for longer than ``read_timeout``
deadline_exceeded      504     the whole fetch took longer than ``total_timeout``
tls_error              502     TLS handshake or certificate verification failed
upstream_error         502     broken HTTP from the server (reset, truncated, corrupt compression)
unsupported_encoding   502     a ``Content-Encoding`` other than identity/gzip/deflate
upstream_status        502     the server answered with a non-2xx status (the status is in the message)
bad_redirect           502     a 3xx without a usable ``Location``
too_many_redirects     502     more than ``max_redirects`` redirects
too_large              413     body (``Content-Length`` or streamed or inflated) over ``max_bytes``
too_many_pixels        413     from decode_image: the image header declares more than ``max_pixels``
empty, unsupported_format, corrupt_image  422   from decode_image (same code as the ImageError)
=====================  ======  ================================================================

A redirect to a refused URL keeps the code of the refusal (e.g. ``blocked_address``), with a message saying it
was a redirect.
"""
from __future__ import annotations


class FetchError(Exception):
    """A refused or failed fetch. ``code`` is stable and machine-readable, ``message`` is for people and
    ``status`` is the HTTP status the service should answer with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"FetchError({self.code!r}, {self.message!r}, {self.status})"


def refused_redirect(e: FetchError) -> FetchError:
    """A hop refused after a redirect keeps the refusal's code, and says that a redirect led there."""
    return FetchError(e.code, f"the image server redirected to a URL that is refused: {e.message}", e.status)
