"""The HTTP service: the Flask app factory, request handling around the describe pipeline (batching, the shared
cache, limits, metrics) and gunicorn's hooks. Only HTTP lives here; what to say about an image is
:mod:`server.describe`, and fetching untrusted URLs is :mod:`server.netsafe`."""
