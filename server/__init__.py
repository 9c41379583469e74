"""alt-text's application layer: the HTTP service, safe fetching, the site audit and the ``alt-text`` CLI."""
