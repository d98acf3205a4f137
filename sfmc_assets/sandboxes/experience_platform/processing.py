"""Batch promotion: read a completed batch's files, validate every row, decide success or failure.

Kept free of HTTP and locking so the worker can run it outside the state lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import CODE_CORRUPT, CODE_REQUIRED, RowError, Validator

MAX_ROW_ERRORS_KEPT = 200  # diagnostics kept per batch; counts are always exact

#: Platform fails a batch over 25,000 files or 1 TB at ingestion, "and an error message identifies the
#: exceeded threshold" (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/guardrails).
MAX_FILES_PER_BATCH = 25_000
MAX_BATCH_BYTES = 1024**4
CODE_GUARDRAILS = "guardrails"  # the documents give the message, not a code
CODE_EMPTY = "106"  # legacy code Platform still reports for an empty file
CODE_UNDIAGNOSED = "INGEST-1211-400"
CODE_DIAGNOSED = "INGEST-1212-400"
DESCRIPTIONS = {
    CODE_EMPTY: "Dataset file is empty. Please upload file with data.",
    CODE_UNDIAGNOSED: (
        "Encountered errors while parsing, converting or otherwise validating the data. Please resend the "
        "data with error diagnostics enabled to collect additional information on failure types"
    ),
    CODE_CORRUPT: "The row has corrupted data and cannot be read or parsed. Fix the corrupted data and try again.",
    CODE_REQUIRED: (
        "A required field is either missing or has a value of null. Add the required field to the input row "
        "and try again."
    ),
}


@dataclass
class Outcome:
    """What promotion decided for one batch."""

    status: str
    metrics: dict[str, int]
    errors: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)
    row_errors: list[dict[str, Any]] = field(default_factory=list)


def _rows_from_file(path: Path, fmt: str, multiline: bool) -> tuple[list[Any], list[RowError], bool]:
    """Return (rows, file-level row errors, from_parquet); unreadable rows become 1401 errors."""
    if fmt == "parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            return (
                [],
                [RowError(CODE_CORRUPT, "#", "parquet", f"file cannot be read as Parquet: {exc}")],
                True,
            )
        wrong = [
            RowError(CODE_CORRUPT, "#/" + "/".join(where), "parquet",
                     f"{'.'.join(where)} is a TIMESTAMP in {unit}; XDM DateTime is INT64 TIMESTAMP_MILLIS")
            for where, unit in _timestamps_not_in_millis(table.schema)
        ]
        return ([], wrong, True) if wrong else (table.to_pylist(), [], True)
    data = path.read_bytes()
    if multiline:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return [], [RowError(CODE_CORRUPT, "#", "json", f"file is not valid JSON: {exc}")], False
        return (parsed if isinstance(parsed, list) else [parsed]), [], False
    rows: list[Any] = []
    errors: list[RowError] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            # Kept in place so row numbers stay true; a JSON array sent without isMultiLineJson ends here.
            rows.append(_Corrupt(line[:200].decode("utf-8", "replace")))
    return rows, errors, False


def guardrails_hit(files: int, size: int, *, max_files: int, max_bytes: int) -> str | None:
    """Platform's message for a batch over its file-count or size limit (its documented wording), or None."""
    over = []
    if files > max_files:
        over.append(f"{files} files (over the {max_files} threshold)")
    if size > max_bytes:
        over.append(f"{size} bytes (over the {max_bytes} threshold)")
    return "Batch ingestion guardrails hit: " + "; ".join(over) if over else None


def _timestamps_not_in_millis(schema: pa.Schema) -> list[tuple[list[str], str]]:
    """(path, unit) of every timestamp column not stored as milliseconds, nested ones included.

    Adobe maps XDM DateTime to Parquet `INT64` annotated `TIMESTAMP_MILLIS` and no other timestamp type
    (https://experienceleague.adobe.com/en/docs/experience-platform/xdm/schema/field-constraints#parquet).
    Whether Platform coerces other units is not documented, so the sandbox accepts only the documented one.
    """
    found: list[tuple[list[str], str]] = []

    def walk(dtype: pa.DataType, where: list[str]) -> None:
        if pa.types.is_timestamp(dtype) and dtype.unit != "ms":
            found.append((where, dtype.unit))
        elif pa.types.is_struct(dtype):
            for child in dtype:
                walk(child.type, [*where, child.name])
        elif pa.types.is_map(dtype):
            walk(dtype.item_type, [*where, "value"])
        elif pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
            walk(dtype.value_type, [*where, "items"])

    for column in schema:
        walk(column.type, [column.name])
    return found


@dataclass
class _Corrupt:
    text: str


@dataclass
class _Tally:
    """What validating a batch's files found: the records that pass and what failed, by code."""

    good: list[dict[str, Any]] = field(default_factory=list)
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    failed_by_code: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def fail(self, code: str, entry: dict[str, Any]) -> None:
        self.failed_by_code[code] = self.failed_by_code.get(code, 0) + 1
        if len(self.row_errors) < MAX_ROW_ERRORS_KEPT:
            self.row_errors.append(entry)


def _refused(files: list[tuple[str, Path]], metrics: dict[str, Any], max_files: int, max_bytes: int) -> Outcome | None:
    """A batch over the guardrails, or with no file or an empty file, fails before any row is read."""
    over = guardrails_hit(len(files), metrics["inputByteSize"], max_files=max_files, max_bytes=max_bytes)
    empty = [name for name, p in files if p.stat().st_size == 0]
    if not over and files and not empty:
        return None
    metrics.update(outputRecordCount=0, failedRecordCount=0)
    if over:
        return Outcome("failed", metrics, [{"code": CODE_GUARDRAILS, "description": over, "rows": []}])
    return Outcome("failed", metrics, [{"code": CODE_EMPTY, "description": DESCRIPTIONS[CODE_EMPTY], "rows": []}])


def _validate_files(files: list[tuple[str, Path]], fmt: str, multiline: bool, validator: Validator) -> _Tally:
    tally = _Tally()
    for name, path in files:
        rows, file_errors, from_parquet = _rows_from_file(path, fmt, multiline)
        if file_errors:  # the whole file is one corrupted "row"
            tally.total += 1
            tally.failed_by_code[CODE_CORRUPT] = tally.failed_by_code.get(CODE_CORRUPT, 0) + 1
            tally.row_errors.append({"file": name, "row": None, "errors": [e.as_dict() for e in file_errors]})
            continue
        for index, row in enumerate(rows):
            tally.total += 1
            if isinstance(row, _Corrupt):
                record, errs = None, [RowError(CODE_CORRUPT, "#", "json", f"row is not valid JSON: {row.text}")]
            else:
                record, errs = validator.validate(row, from_parquet=from_parquet)
            if record is not None:
                tally.good.append(record)
            else:
                tally.fail(errs[0].code, {"file": name, "row": index, "errors": [e.as_dict() for e in errs]})
    return tally


def promote(
    files: list[tuple[str, Path]],
    *,
    fmt: str,
    multiline: bool,
    validator: Validator,
    diagnostics: bool,
    partial_percent: float | None,
    max_files: int = MAX_FILES_PER_BATCH,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Outcome:
    """Validate every row of every file and decide the batch's fate like Platform does.

    Without partial ingestion any bad row fails the whole batch; with ``enableErrorDiagnostics`` and
    ``partialIngestionPercent`` the batch succeeds while bad rows stay within that percentage.
    """
    size = sum(p.stat().st_size for _, p in files)
    metrics = {"inputByteSize": size, "inputFileCount": len(files), "inputRecordCount": 0}
    refused = _refused(files, metrics, max_files, max_bytes)
    if refused is not None:
        return refused
    tally = _validate_files(files, fmt, multiline, validator)
    failed = tally.total - len(tally.good)
    metrics.update(inputRecordCount=tally.total, failedRecordCount=failed)
    if failed == 0:
        metrics["outputRecordCount"] = len(tally.good)
        return Outcome("success", metrics, [], tally.good, tally.row_errors)
    tolerated = diagnostics and partial_percent is not None and failed * 100.0 / tally.total <= partial_percent
    errors = _batch_errors(tally, failed, diagnostics, tolerated)
    if tolerated:
        metrics["outputRecordCount"] = len(tally.good)
        return Outcome("success", metrics, errors, tally.good, tally.row_errors)
    metrics["outputRecordCount"] = 0
    return Outcome("failed", metrics, errors, [], tally.row_errors)


def _batch_errors(tally: _Tally, failed: int, diagnostics: bool, tolerated: bool) -> list[dict[str, Any]]:
    """The batch's `errors`: the generic code without diagnostics, else a summary plus a count per code."""
    if not diagnostics:
        return [{"code": CODE_UNDIAGNOSED, "description": DESCRIPTIONS[CODE_UNDIAGNOSED]}]
    ingested = len(tally.good) if tolerated else 0
    summary = (f"Encountered {failed} errors in the data. Successfully ingested {ingested} rows. Please review "
               "the associated diagnostic files for more details.")
    return [{"code": CODE_DIAGNOSED, "description": summary}] + [
        {"code": code, "description": DESCRIPTIONS[code], "recordCount": count}
        for code, count in sorted(tally.failed_by_code.items())
    ]
