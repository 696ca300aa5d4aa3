"""The HTTP layer: routes, the lean media path, the URL scheme and request guards.

Handlers translate HTTP into calls on the channel registry and back; no upstream I/O happens here.
It may import :mod:`trioproxy.channels` and everything below it.
"""
