"""The configuration format: the bundled file loads, and mistakes are named at load time."""

import textwrap
from pathlib import Path

import pytest

from sfmc_assets.lib.config import load_config


def test_bundled_configuration_describes_the_three_sandbox_data_extensions() -> None:
    config = load_config()
    assert [d.name for d in config.data_extensions] == ["contacts", "campaigns", "activities"]
    contacts = config.data_extension("contacts")
    assert contacts.external_key == "Contacts_DE"
    assert contacts.primary_key == ("SubscriberKey",)
    assert contacts.fields is not None
    pk = [f for f in contacts.fields if f.is_primary_key]
    assert [f.name for f in pk] == ["SubscriberKey"] and not pk[0].is_nullable
    decimal = next(f for f in contacts.fields if f.name == "LifetimeValue")
    assert (decimal.type, decimal.length, decimal.scale) == ("Decimal", 18, 2)
    assert config.source.offset.total_seconds() == -6 * 3600


BASE = """
start_date: "2026-10-01"
data_extensions:
  - name: {name}
    kind: activities
    external_key: Web_Activities
    primary_key: [ActivityID]
    delta_column: {delta}
    columns:
      activity_id: ActivityID
      contact_key: SubscriberKey
      activity_kind: ActivityType
      activity_at: ActivityDate
    values:
      activity_kind: {{PageView: {canonical}}}
"""


def _write(tmp_path: Path, **kw: str) -> Path:
    values = {"name": "activities", "delta": "ActivityDate", "canonical": "page_view"} | kw
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(BASE.format(**values)))
    return path


def test_minimal_configuration_loads(tmp_path: Path) -> None:
    de = load_config(_write(tmp_path)).data_extension("activities")
    assert de.fields is None  # discovered at run time
    assert de.values["activity_kind"] == {"PageView": "page_view"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "Web Activities"}, "snake_case"),
        ({"delta": "ModifiedDate"}, "delta_column 'ModifiedDate' must be the column mapped to 'activity_at'"),
        ({"canonical": "visit"}, "activity_kind maps onto ['visit']"),
    ],
)
def test_configuration_errors_name_the_problem(tmp_path: Path, override: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load_config(_write(tmp_path, **override))
    assert str(tmp_path / "c.yaml") in str(info.value)


def test_missing_required_role_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("      contact_key: SubscriberKey\n", ""))
    with pytest.raises(ValueError, match=r"required role\(s\) \['contact_key'\]"):
        load_config(path)


def test_compact_field_syntax_is_validated(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("    columns:", "    fields:\n      ActivityID: Text(36) primary-kee\n    columns:"))
    with pytest.raises(ValueError, match="unknown flag"):
        load_config(path)
