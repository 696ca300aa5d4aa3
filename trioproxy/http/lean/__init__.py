"""The lean path: the hot HLS requests of HTTP/1.1 connections of our own accept loop, parsed
(:mod:`.parser`, no I/O), judged and answered with the app's decisions (:mod:`.hot`) and written
from memory (:mod:`.connection`), without an ASGI scope or a Quart request per request; every
other request goes to Hypercorn and the app, as before."""

from .connection import serve_connection
from .hot import LeanPath
from .parser import Head, parse_head

__all__ = ["Head", "LeanPath", "parse_head", "serve_connection"]
