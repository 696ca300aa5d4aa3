"""Upstream I/O: the HTTP transport, the engine client with the upstream policy inside it, sources
as a kind of upstream, and the one orchestrator client.

Everything that talks to an engine, an HLS origin, an EPG server or the orchestrator lives here.
It may import :mod:`trioproxy.hls`, :mod:`trioproxy.guide`, :mod:`trioproxy.config` and
:mod:`trioproxy.errors`; never the channels or the HTTP layer.
"""
