"""Channel tasks: the registry of channels, a channel, its upstream session, its event sender,
its players and admission; and the channel list's guide, refreshed beside them.

Each channel is a Trio nursery; the registry owns the nursery they all run in. It may import
:mod:`trioproxy.upstream`, :mod:`trioproxy.hls`, :mod:`trioproxy.guide`, :mod:`trioproxy.config`
and :mod:`trioproxy.errors`; never the HTTP layer.
"""
