"""The HDHomeRun routes: the proxy as a network tuner for media servers (Plex, Jellyfin, Emby).

A media server is given the proxy's address; it reads ``/discover.json`` (the device: its
``DeviceID``, ``TunerCount``, ``BaseURL`` and ``LineupURL``), then ``/lineup.json`` (each
channel's ``GuideNumber``, ``GuideName`` and ``URL``), and plays each ``URL`` as MPEG-TS with
ffmpeg. Plex first asks for a channel scan (``POST /lineup.post?scan=start``) and polls
``/lineup_status.json`` until ``ScanInProgress`` is 0: the lineup is the channel list, so a scan
is done as soon as it is asked for.

- ``TunerCount`` is what the engines can carry now (engines × ``ACEXY_MAX_STREAMS_PER_ENGINE``,
  at most ``TRIOPROXY_MAX_CHANNELS`` and ``TRIOPROXY_TUNER_COUNT``): a media server then never
  opens more channels than the engines take, and the count drops when an engine leaves. It is
  at least 1, so that a media server keeps the tuner while no engine is listed.
- Lineup URLs are the channels' MPEG-TS URLs with ``keepalive=0``: nothing goes out before the
  first segment, and a channel that cannot start answers a JSON error (503, 502) instead.
- URLs are absolute, under the address the client used (behind a trusted proxy, the one it
  forwarded); a lineup asked for with a player key lists URLs with that key.
- ``DeviceID`` is ``TRIOPROXY_TUNER_DEVICE_ID``, else derived from ``TRIOPROXY_TUNER_NAME`` and
  ``TRIOPROXY_BIND``: the same installation is the same device after a restart.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from xml.sax.saxutils import escape

from quart import Response, request

from ...config.tuner import derived_device_id
from ...errors import BadRequest, NotFound
from .. import urls
from ..lineup import Listed
from ..m3u import M3U_TYPE, render_m3u
from ..media import CORS
from .context import Context, json_response

__all__ = ["MODEL_NUMBER", "TunerRoutes"]

MANUFACTURER = "Silicondust"
MODEL_NUMBER = "HDHR5-4US"
"""A network tuner without transcoding: Jellyfin adds ``?transcode=`` to the URLs of models
that have it (``HDTC``), which our URLs, having a query already, would not survive."""
FIRMWARE_NAME = "hdhomerun5_atsc"
FIRMWARE_VERSION = "20240101"
LINEUP_STATUS = {"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]}


class TunerRoutes:
    def __init__(self, context: Context) -> None:
        self.context = context
        config = context.config
        self.device_id = config.tuner_device_id or derived_device_id(config.tuner_name, config.bind)
        digest = hashlib.sha256(f"trioproxy tuner {self.device_id}".encode()).digest()
        self.device_auth = digest[:12].hex()
        self.udn = f"uuid:{uuid.UUID(bytes=digest[12:28])}"

    def tuner_count(self) -> int:
        """Channels the engines can carry now, within the settings' caps; at least 1."""
        config = self.context.config
        engines = len(self.context.registry.directory.engines)
        count = min(engines * config.max_streams_per_engine, config.max_channels)
        if config.tuner_count:
            count = min(count, config.tuner_count)
        return max(1, count)

    async def discover(self) -> Response:
        base = self.context.base()
        key = self.context.carried_key().replace("&", "?", 1)
        return json_response(
            {
                "FriendlyName": self.context.config.tuner_name,
                "Manufacturer": MANUFACTURER,
                "ModelNumber": MODEL_NUMBER,
                "FirmwareName": FIRMWARE_NAME,
                "FirmwareVersion": FIRMWARE_VERSION,
                "DeviceID": self.device_id,
                "DeviceAuth": self.device_auth,
                "TunerCount": self.tuner_count(),
                "BaseURL": base,
                "LineupURL": urls.LINEUP.build(base) + key,
            }
        )

    async def lineup_status(self) -> Response:
        return json_response(LINEUP_STATUS)

    async def lineup_post(self) -> Response:
        scan = request.args.get("scan")
        if scan not in ("start", "abort"):
            raise BadRequest("scan= must be start or abort")
        return Response("", status=200, headers=CORS)

    def _channels(self) -> tuple[Listed, ...]:
        if self.context.config.channels_file is None:
            raise NotFound("no channel list: set TRIOPROXY_CHANNELS_FILE")
        return self.context.lineup.channels

    def _url(self, base: str, channel: Listed) -> str:
        """The channel's MPEG-TS URL that sends nothing before media, with the request's key."""
        entry, key = channel.entry, self.context.carried_key()
        if entry.kind == "source":
            return urls.source_ts_url(base, entry.key, keepalive=False) + key
        infohash = entry.kind == "infohash"
        return urls.ts_url(base, entry.key, infohash=infohash, keepalive=False) + key

    async def lineup(self) -> Response:
        base = self.context.base()
        rows: list[dict[str, Any]] = [
            {
                "GuideNumber": str(channel.number),
                "GuideName": channel.entry.name,
                "URL": self._url(base, channel),
            }
            for channel in self._channels()
        ]
        return json_response(rows)

    async def lineup_m3u(self) -> Response:
        base = self.context.base()
        channels = {channel.entry: channel for channel in self._channels()}
        body = render_m3u(
            channels, lambda entry: self._url(base, channels[entry]), self.context.config.epg_url
        )
        return Response(body, content_type=M3U_TYPE, headers={"Cache-Control": "no-cache", **CORS})

    async def device_xml(self) -> Response:
        base = escape(self.context.base())
        name = escape(self.context.config.tuner_name)
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase>{base}</URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>
    <friendlyName>{name}</friendlyName>
    <manufacturer>{MANUFACTURER}</manufacturer>
    <modelName>{MODEL_NUMBER}</modelName>
    <modelNumber>{MODEL_NUMBER}</modelNumber>
    <serialNumber>{self.device_id}</serialNumber>
    <UDN>{self.udn}</UDN>
  </device>
</root>
"""
        headers = {"Cache-Control": "no-cache", **CORS}
        return Response(body, content_type="application/xml; charset=utf-8", headers=headers)
