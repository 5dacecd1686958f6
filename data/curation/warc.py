"""WARC files in and out: the HTML pages of a crawl (Common Crawl's format), every skipped
record named by a reason, as the Nemotron-CC-Math pipeline (arXiv 2508.15096) reads them.

`read_pages` streams the response records of a WARC file (plain or gzipped per record)
through fastwarc and yields `(Page, "")` for an HTML page or `(None, reason)` for a record
it skips, never raising on bad content:

  not_html          a Content-Type that is not HTML (or XHTML)
  too_large         a record over `max_page_bytes`, skipped without reading its body
  http_error        an HTTP status other than 200
  truncated_record  a body shorter than its Content-Length (the file ends mid-record)
  corrupt_record    unparsable WARC or HTTP headers, a gzip error mid-file, an undecodable
                    Content-Encoding; the rest of the file is not read
  unreadable_file   the file cannot be opened (yielded once)

Bodies are taken as stored (Common Crawl stores them with their Content-Encoding undone).
`write_warc` writes WARC/1.1 response records by hand (the format is a header block, a
blank line, the HTTP message and two CRLFs), for the tests and the claim's generated crawl.
"""

from __future__ import annotations

import dataclasses
import gzip
import uuid
import zlib
from collections.abc import Iterable, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecordType

from data.curation import storage

DEFAULT_MAX_PAGE_BYTES = 10 * 2**20
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 2**20


@dataclasses.dataclass(frozen=True)
class Page:
  """One HTML response: its URL, raw body, the charset its HTTP header declares, record id."""
  url: str
  html: bytes
  http_charset: str | None
  record_id: str


def read_pages(path: str, *, max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
               ) -> Iterator[tuple[Page | None, str]]:
  """Every response record of the WARC file at `path` as `(page, "")` or `(None, reason)`.

  A record's body is read only when its Content-Length is at most `max_page_bytes`
  (fastwarc skips the rest of the stream in fixed-size reads). A truncated or corrupt
  record ends the file: it is counted once and the records before it are kept.
  """
  try:
    stream = storage.open_read(path)
  except OSError:
    yield None, "unreadable_file"
    return
  with stream:
    records = ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=False,
                              fsspec_args=False)
    last_pos = 0
    while True:
      try:
        record = next(records)
      except StopIteration:
        break
      except (OSError, ValueError):
        yield None, _gzip_tail_reason(path, last_pos) or "corrupt_record"
        return
      last_pos = record.stream_pos
      page, reason = _page_of_record(record, max_page_bytes)
      if reason == "corrupt_record":
        reason = _gzip_tail_reason(path, last_pos) or reason
      yield page, reason
      if reason in ("truncated_record", "corrupt_record"):
        return
  if reason := _gzip_tail_reason(path, last_pos):
    yield None, reason


def _page_of_record(record, max_page_bytes: int) -> tuple[Page | None, str]:
  """The page a response record holds, or the reason it is skipped."""
  if record.content_length > max_page_bytes:
    return None, "too_large"
  try:
    block = record.reader.read()
  except (OSError, ValueError):
    return None, "corrupt_record"
  if len(block) < record.content_length:
    return None, "truncated_record"
  record.set_bytes_content(block)
  try:
    record.parse_http()
  except (OSError, ValueError):
    return None, "corrupt_record"
  if record.http_headers is None or record.http_headers.status_code is None:
    return None, "corrupt_record"
  if record.http_headers.status_code != 200:
    return None, "http_error"
  if (record.http_content_type or "").lower() not in _HTML_TYPES:
    return None, "not_html"
  return Page(url=record.headers.get("WARC-Target-URI", ""), html=record.reader.read(),
              http_charset=record.http_charset, record_id=record.record_id), ""


def _gzip_tail_reason(path: str, offset: int) -> str:
  """"" when the gzip members from `offset` (the last record read) to the end of the file
  are whole, else `truncated_record` (a member cut short: fastwarc stops there silently)
  or `corrupt_record` (bytes that are not gzip); "" for a plain file."""
  with storage.open_read(path) as f:
    f.seek(offset)
    if f.read(2) != _GZIP_MAGIC:
      return ""
    f.seek(offset)
    member, started = zlib.decompressobj(wbits=31), False
    while chunk := f.read(_CHUNK):
      while chunk:
        started = True
        try:
          member.decompress(chunk, _CHUNK)
          while member.unconsumed_tail:
            member.decompress(member.unconsumed_tail, _CHUNK)
        except zlib.error:
          return "corrupt_record"
        if not member.eof:
          break
        chunk, member, started = member.unused_data, zlib.decompressobj(wbits=31), False
  return "truncated_record" if started else ""


def write_warc(path: str, pages: Iterable[tuple[str, bytes, str]]) -> int:
  """Writes `(url, body, content_type)` as WARC/1.1 response records (HTTP 200), each
  record its own gzip member when `path` ends in `.gz`; returns the number written."""
  compress = path.endswith(".gz")
  count = 0
  with open(path, "wb") as f:
    for url, body, content_type in pages:
      record = response_record(url, body, content_type)
      f.write(gzip.compress(record, mtime=0) if compress else record)
      count += 1
  return count


def response_record(url: str, body: bytes, content_type: str, *, status: int = 200,
                    reason: str = "OK") -> bytes:
  """One WARC/1.1 response record holding an HTTP/1.1 response with `body`."""
  http = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
          f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
  record_id = uuid.uuid5(uuid.NAMESPACE_URL, url)
  header = (f"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
            f"WARC-Date: 2025-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
            f"Content-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(http)}\r\n\r\n").encode("utf-8")
  return header + http + b"\r\n\r\n"
