"""Suggested data extension entries as YAML, appended to a configuration file without touching the rest.

A configuration file is written and commented by people, so an entry is inserted as text at the end of
the `data_extensions:` list (found from the YAML parser's positions), indented like the entries already
there, and everything else stays byte for byte. Before the file is replaced, the result is parsed again:
it must hold exactly the old configuration plus the new entries, and load as a valid configuration;
otherwise nothing is written.
"""

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.discovery import Suggestion

#: Column where trailing comments start, so they line up.
_COMMENT_AT = 44


def scalar(value: object) -> str:
    """One YAML scalar in flow form, quoted when it must be (`Ship Date`, `a: b`, `yes`, `012`)."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text[1:-1]


def _line(indent: int, text: str, comment: str = "") -> str:
    body = " " * indent + text
    return f"{body.ljust(_COMMENT_AT)}  # {comment}" if comment else body


def _flow(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False).strip()


def _fields(s: Suggestion, at: int) -> list[str]:
    described = f"as Marketing Cloud described them on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}"
    lines = [_line(at, "fields:", described)]
    for f in s.de.fields:
        flags = " primary-key" if f.is_primary_key else (" required" if not f.is_nullable else "")
        lines.append(_line(at + 2, f"{scalar(f.name)}: {f.describe()}{flags}"))
    return lines


def _kind(s: Suggestion, at: int) -> list[str]:
    """The suggested kind, commented out: its enum roles need every source value mapped by a person."""
    if s.kind is None:
        return []
    kind, roles = s.kind
    lines = [f"{' ' * at}# Suggested kind (the column names make it likely): uncomment to feed the segment "
             "tables,", f"{' ' * at}# after checking the roles and mapping every source value of the enum roles.",
             f"{' ' * at}# kind: {kind.name}", f"{' ' * at}# columns:"]
    lines += [f"{' ' * at}#   {role}: {scalar(column)}" for role, column in roles.items()]
    enums = [r for r in kind.enum_roles if r.name in roles]
    if enums:
        lines.append(f"{' ' * at}# values:          # sampled source values -> {', '.join(r.name for r in enums)}")
        for role in enums:
            mapping = s.values.get(role.name) or {"<source value>": (role.enum or ("?",))[0]}
            lines.append(f"{' ' * at}#   {role.name}: {_flow(mapping)}   # allowed: {', '.join(role.enum or ())}")
    return lines


def _aep(s: Suggestion, at: int) -> list[str]:
    if s.aep is None:
        return [f"{' ' * at}# {s.aep_reason}"] if s.aep_reason else []
    prefix = "" if s.aep_active else "# "
    why = s.aep_reason if s.aep_active else "suggested XDM mapping: set your dataset id and uncomment"
    lines = [_line(at, f"{prefix}aep:", why)]
    for key, value in s.aep.items():
        if isinstance(value, dict) and value:
            lines.append(" " * (at + 2) + f"{prefix}{key}:")
            lines += [" " * (at + 4) + f"{prefix}{scalar(k)}: {_flow(v) if isinstance(v, dict) else scalar(v)}"
                      for k, v in value.items()]
        elif value not in (None, {}):
            lines.append(" " * (at + 2) + f"{prefix}{key}: {scalar(value)}")
    return lines


def entry_yaml(s: Suggestion, dash_at: int = 2) -> str:
    """The entry as YAML list-item text, its dash at column `dash_at`, every suggestion commented."""
    at = dash_at + 2
    de = s.de
    lines = [_line(dash_at, f"- name: {s.name}", f"suggested from the name {de.summary.name!r}"),
             _line(at, f"external_key: {scalar(de.key)}")]
    if de.summary.description:
        lines.append(_line(at, f"description: {scalar(de.summary.description)}"))
    if s.delta:
        lines.append(_line(at, f"delta_column: {scalar(s.delta)}", s.delta_reason))
    else:
        lines.append(_line(at, "sync: full", s.delta_reason + ": each day is a snapshot"))
    lines.append(_line(at, "schedule: daily", "once | hourly | daily | weekly, with `interval` (docs/schedules.md)"))
    if de.primary_key:
        lines.append(_line(at, f"primary_key: {_flow(de.primary_key)}", "Marketing Cloud's primary key"))
    else:
        lines.append(" " * at + "# Marketing Cloud marks no primary key: rows are not de-duplicated; set "
                                "`primary_key` if one column identifies a row.")
    lines += _fields(s, at)
    if s.rename:
        lines.append(_line(at, "rename:", "suggested: these columns' snake_case names collide"))
        lines += [_line(at + 2, f"{scalar(k)}: {v}") for k, v in s.rename.items()]
    return "\n".join(lines + _kind(s, at) + _aep(s, at)) + "\n"


def new_config_text(entries: Sequence[str], start: dt.date) -> str:
    """A configuration file holding only `entries` (their dashes at column 2)."""
    return (
        "# Data extensions read from Marketing Cloud (docs/discover.md), written by `sfmc-assets discover "
        "--write-config`.\n\n"
        f"{_line(0, f'start_date: {scalar(start.isoformat())}', 'suggested: the first daily partition (UTC)')}\n"
        f"{_line(0, 'lookback_days: 1', 'the schedule also re-reads this many earlier days (late rows)')}\n\n"
        "data_extensions:\n" + "\n".join(entries)
    )


def _insertion(text: str) -> tuple[int, int]:
    """(line index to insert at, column of the list's dashes) for the end of `data_extensions:`."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("the configuration is not a YAML mapping")
    node = next((v for k, v in root.value if k.value == "data_extensions"), None)
    if not isinstance(node, yaml.SequenceNode) or node.flow_style or not node.value:
        raise ValueError("`data_extensions:` must be a block list (`- name: ...` lines) to append to")
    lines = text.splitlines(keepends=True)
    at = node.end_mark.line if node.end_mark.column == 0 or node.end_mark.line >= len(lines) else len(lines)
    dash = node.start_mark.column
    # Blank lines and comments left of the entries' content belong to what follows the list.
    while at > 0 and (not lines[at - 1].strip() or (lines[at - 1].lstrip().startswith("#")
                                                    and len(lines[at - 1]) - len(lines[at - 1].lstrip()) <= dash)):
        at -= 1
    return at, dash


def appended_text(text: str, render: Callable[[int], list[str]]) -> str:
    """`text` with the entries `render(dash_column)` gives inserted at the end of `data_extensions:`."""
    at, dash = _insertion(text)
    lines = text.splitlines(keepends=True)
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    block = "".join("\n" + entry for entry in render(dash))
    return "".join(lines[:at]) + block + "".join(lines[at:])


def checked(old_text: str | None, new_text: str, names: Sequence[str]) -> ProjectConfig:
    """The new file's configuration, if it is the old one plus exactly `names` (else `ValueError`)."""
    new: dict[str, Any] = yaml.safe_load(new_text)
    if old_text is not None:
        old: dict[str, Any] = yaml.safe_load(old_text)
        added = new.get("data_extensions", [])[len(old.get("data_extensions", [])):]
        same = {k: v for k, v in new.items() if k != "data_extensions"} == \
            {k: v for k, v in old.items() if k != "data_extensions"} and \
            new["data_extensions"][:len(old["data_extensions"])] == old["data_extensions"]
        if not same or [d.get("name") for d in added] != list(names):
            raise ValueError("appending would change more than the new entries; nothing was written")
    return ProjectConfig.model_validate(new)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
