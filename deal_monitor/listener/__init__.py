"""The webhook listener: a WSGI app (pure request handling) and the waitress server owning it."""
