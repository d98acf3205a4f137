"""The large-file upload of batch ingestion: initialise a file, send its parts, complete it.

For files over the small-file limit (batch-ingestion.yaml in https://github.com/AdobeDocs/experience-platform-apis
and https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/batch/api-overview):
- `POST .../files/{path}?action=INITIALIZE` -> 201, no body;
- `PATCH .../files/{path}` with `Content-Type: application/octet-stream` and `Content-Range: bytes
  {start}-{end}` -> 200 with `{name, sizeInBytes}`; a part holds 0 to 512,000,000 bytes;
- `HEAD .../files/{path}` -> 200 with `Range: bytes=0-{last byte received}`;
- `POST .../files/{path}?action=COMPLETE` -> 201; "If chunks of a large file are found overlapping or
  missing, the server responds with an HTTP 400 Bad Request ... range validations are done at the time of
  file completion" (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/batch/troubleshooting).
Then the batch is completed as usual. The project's client splits large days into several small files
instead; Adobe's own Python client (aepp) still offers this upload and drives it in the tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MAX_PART_BYTES = 512_000_000
_RANGE = re.compile(r"^bytes[ =](\d+)-(\d+)(?:/(?:\d+|\*))?$")


class UploadError(ValueError):
    """A large-file request the server refuses with 400 (the message says why)."""


def start(private: dict[str, Any], name: str, staging: Path) -> None:
    """`?action=INITIALIZE`: an empty file at `name`, waiting for its parts."""
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_bytes(b"")
    private.setdefault("largeFiles", {})[name] = []


def add_part(private: dict[str, Any], name: str, staging: Path, content_range: str | None,
             data: bytes) -> int:
    """A PATCH: write `data` at the range it names; returns the bytes received so far."""
    ranges = _ranges_of(private, name)
    found = _RANGE.match((content_range or "").strip())
    if found is None:
        raise UploadError("Content-Range must be 'bytes {start}-{end}'")
    first, last = int(found[1]), int(found[2])
    if last < first or last - first + 1 != len(data):
        raise UploadError(f"Content-Range bytes {first}-{last} does not match the {len(data)}-byte body")
    if len(data) > MAX_PART_BYTES:
        raise UploadError(f"a part holds at most {MAX_PART_BYTES} bytes")
    with staging.open("r+b") as out:
        out.seek(first)
        out.write(data)
    ranges.append([first, last])
    return sum(b - a + 1 for a, b in ranges)


def received(private: dict[str, Any], name: str) -> str:
    """The `Range` header of a HEAD: from byte 0 to the last byte received (`bytes=0--1`: nothing yet)."""
    ranges = _ranges_of(private, name)
    return f"bytes=0-{max((b for _, b in ranges), default=-1)}"


def finish(private: dict[str, Any], name: str, staging: Path, target: Path) -> int:
    """`?action=COMPLETE`: the parts must cover 0..n-1 exactly once; the file joins the batch."""
    ranges = sorted(_ranges_of(private, name))
    expected = 0
    for first, last in ranges:
        if first != expected:
            kind = "overlapping" if first < expected else "missing"
            raise UploadError(f"chunks of {name} are {kind} at byte {min(first, expected)}")
        expected = last + 1
    staging.replace(target)
    del private["largeFiles"][name]
    private["files"][name] = expected
    return expected


def _ranges_of(private: dict[str, Any], name: str) -> list[list[int]]:
    ranges = private.get("largeFiles", {}).get(name)
    if ranges is None:
        raise LookupError(name)
    return ranges
