"""Every HTTP exchange of a crawl task as WARC records, so a crawl can be audited and replayed.

One gzipped WARC/1.1 file per host task and level, written with warcio: a `warcinfo` record, then
for each exchange a `request` and a `response` record (warcio adds `WARC-Block-Digest` and
`WARC-Payload-Digest`), and a `metadata` record per URL with the crawler's decision.
Source: ISO 28500:2017 (WARC 1.1), sections 5 and 6; header renaming after Common Crawl.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

if TYPE_CHECKING:
    from jobs.crawl.fetch import Exchange

# The payload is stored de-chunked, so the transfer coding no longer describes it; Common Crawl
# keeps such headers under an `X-Crawler-` prefix instead of dropping them.
_RENAMED = {"transfer-encoding"}


def warc_name(level: int, host: str) -> str:
    """Deterministic, so a retried Spark task overwrites its own file instead of adding one."""
    return f"warc/level-{level:03d}-host-{hashlib.sha256(host.encode()).hexdigest()[:8]}.warc.gz"


class WarcFile:
    """Writes to `<name>.tmp` and renames on a clean close: a killed task leaves no partial WARC."""

    def __init__(self, out_dir: str, name: str, user_agent: str) -> None:
        self.name = name
        self.path = Path(out_dir) / name
        self.user_agent = user_agent
        self._fh: BinaryIO | None = None
        self._writer: WARCWriter | None = None

    def __enter__(self) -> WarcFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path.with_name(self.path.name + ".tmp"), "wb")
        self._writer = WARCWriter(self._fh, gzip=True, warc_version="1.1")
        info = {
            "software": "lmforge crawler (warcio)",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "robots": "obey (RFC 9309); AI opt-outs: noai, TDMRep",
            "http-header-user-agent": self.user_agent,
        }
        self._writer.write_record(self._writer.create_warcinfo_record(self.path.name, info))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._fh is not None
        tmp = Path(self._fh.name)
        self._fh.close()
        if kind is None:
            os.replace(tmp, self.path)
        else:
            tmp.unlink(missing_ok=True)

    def exchange(self, ex: Exchange, omit_payload: bool = False) -> str | None:
        """A request and its response; returns the response's record id (None: no response came).

        `omit_payload` stores the headers only (`WARC-Truncated: unspecified`): used for pages
        whose owner reserved them, so their content is never persisted.
        """
        assert self._writer is not None
        if not ex.status:
            return None
        common = {"WARC-IP-Address": ex.ip, "WARC-Date": ex.started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        resp_headers = [(f"X-Crawler-{k}" if k.lower() in _RENAMED else k, v) for k, v in ex.headers]
        truncated = "unspecified" if omit_payload else ex.truncated
        warc_fields = {**common, **({"WARC-Truncated": truncated} if truncated else {})}
        payload = b"" if omit_payload else ex.body
        response = self._writer.create_warc_record(
            ex.url,
            "response",
            payload=io.BytesIO(payload),
            length=len(payload),
            warc_headers_dict=warc_fields,
            http_headers=StatusAndHeaders(f"{ex.status} {ex.reason}", resp_headers, protocol=ex.http_version),
        )
        record_id: str = response.rec_headers.get_header("WARC-Record-ID")
        parts = urlsplit(ex.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = self._writer.create_warc_record(
            ex.url,
            "request",
            warc_headers_dict={**common, "WARC-Concurrent-To": record_id},
            http_headers=StatusAndHeaders(
                f"GET {target} {ex.http_version}", ex.request_headers, is_http_request=True
            ),
        )
        self._writer.write_record(request)
        self._writer.write_record(response)
        return record_id

    def metadata(self, url: str, fields: dict[str, str], concurrent_to: str | None) -> None:
        """The crawler's view of one URL (decision, depth, signals) as `application/warc-fields`."""
        assert self._writer is not None
        body = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v).encode()
        extra = {"WARC-Concurrent-To": concurrent_to} if concurrent_to else {}
        record = self._writer.create_warc_record(
            url, "metadata", payload=io.BytesIO(body), length=len(body), warc_headers_dict=extra
        )
        self._writer.write_record(record)
