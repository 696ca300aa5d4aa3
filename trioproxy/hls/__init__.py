"""Pure HLS logic: reading upstream playlists, rendering ours, the window and fetch planning.

Nothing here does I/O or imports trio or httpx: every function is a plain function of its inputs,
testable without an event loop. It may import :mod:`trioproxy.errors` and nothing else of the
package.
"""
