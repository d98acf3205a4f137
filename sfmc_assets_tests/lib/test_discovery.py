"""Suggestions for a new data extension's entry, and appending entries to a commented configuration file."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.lib.config_entries import appended_text, checked, entry_yaml, new_config_text, scalar
from sfmc_assets.lib.discovery import (
    DiscoveredDataExtension,
    clean_renames,
    entry_name,
    masked,
    suggest,
    suggest_delta,
    suggest_kind,
    suggest_values,
)
from sfmc_assets.lib.marketing_cloud.catalog import DataExtensionSummary
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec, parse_compact
from sfmc_assets.lib.settings import config_path


def fields(**specs: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(**parse_compact(name.replace("__", " "), spec)) for name, spec in specs.items())


def discovered(name: str, key: str, **specs: str) -> DiscoveredDataExtension:
    return DiscoveredDataExtension(DataExtensionSummary(id="1", key=key, name=name), fields(**specs))


@pytest.mark.parametrize(("specs", "expected"), [
    ({"ID": "Text(10) primary-key", "CreatedDate": "Date required", "ModifiedDate": "Date required"},
     "ModifiedDate"),  # a modification time beats a creation time
    ({"ID": "Text(10) primary-key", "BirthDate": "Date required", "EventDate": "Date required"}, "EventDate"),
    ({"ID": "Text(10) primary-key", "LastLogin": "Date required"}, "LastLogin"),
    ({"ID": "Text(10) primary-key", "ModifiedDate": "Date"}, None),  # may be empty: rows would be lost
    ({"ID": "Text(10) primary-key", "BirthDate": "Date required"}, None),  # a calendar fact, not a row time
    ({"ID": "Text(10) primary-key", "Name": "Text(50)"}, None),
])
def test_the_suggested_delta_column_is_a_required_row_time(specs: dict[str, str], expected: str | None) -> None:
    delta, reason = suggest_delta(fields(**specs))
    assert delta == expected and reason.startswith("suggested:")
    if expected is None and "ModifiedDate" in specs:
        assert "may be empty" in reason


def test_names_are_unique_snake_case_and_colliding_columns_are_renamed() -> None:
    de = discovered("2024 Loyalty Members", "LM")
    assert entry_name(de, set()) == "c_2024_loyalty_members"
    assert entry_name(discovered("Orders", "O"), {"orders", "orders_2"}) == "orders_3"
    renames = clean_renames(fields(OrderID="Text(10) primary-key", Order__ID="Text(10)",
                                   Partition__Date="Date"), frozenset({"partition_date"}))
    assert renames == {"Order ID": "order_id_2", "Partition Date": "source_partition_date"}


def test_a_kind_is_suggested_when_every_required_role_has_a_likely_column() -> None:
    contacts = fields(SubscriberKey="Text(254) primary-key", Email="EmailAddress(254) required",
                      Stage="Text(20)", OptIn="Boolean", ModifiedDate="Date required")
    kind, roles = suggest_kind(contacts, "ModifiedDate") or (None, {})
    assert kind is not None and kind.name == "contacts"
    assert roles == {"contact_key": "SubscriberKey", "email": "Email", "lifecycle_stage": "Stage",
                     "opt_in": "OptIn", "modified_at": "ModifiedDate"}
    assert suggest_kind(contacts[:-1], None) is None  # no delta column: a kind needs incremental reads
    assert suggest_kind(fields(Code="Text(5) primary-key", Changed="Date required"), "Changed") is None
    sample = pl.DataFrame({"Stage": ["New", "Returning", "Loyal", None, "Gold"]})
    assert suggest_values(sample, "Stage", ("new", "repeat", "loyal", "inactive")) == {
        "Gold": "?", "Loyal": "loyal", "New": "new", "Returning": "?"}


def test_preview_masks_personal_columns_by_type_and_name() -> None:
    specs = fields(ID="Text(5) primary-key", Mail="EmailAddress(100)", FirstName="Text(50)", Cell="Phone(20)",
                   Points="Number")
    frame = pl.DataFrame({"ID": ["a"], "Mail": ["ana@example.com"], "FirstName": ["Ana"], "Cell": ["+33"],
                          "Points": [3]})
    assert masked(frame, specs).row(0) == ("a", "a***", "A***", "+***", 3)


def test_an_entry_quotes_awkward_names_and_marks_every_suggestion() -> None:
    de = discovered("Odd: names", "Odd#1", **{"yes": "Text(5) primary-key", "Ship__Date": "Date required",
                                              "a: b": "Decimal(10,2)", "012": "Boolean"})
    s = suggest(de, set(), dataset="ds1", xdm_tenant="acme")
    text = entry_yaml(s)
    entry = yaml.safe_load(text)[0]
    assert entry["external_key"] == "Odd#1" and entry["delta_column"] == "Ship Date"
    assert list(entry["fields"]) == ["yes", "Ship Date", "a: b", "012"]
    assert entry["fields"]["a: b"] == "Decimal(10,2)" and entry["primary_key"] == ["yes"]
    assert entry["aep"]["fields"]["_acme.oddNames.shipDate"] == "ship_date"
    assert all("# suggested" in line for line in text.splitlines() if line.lstrip().startswith(("- name",
                                                                                              "delta_column")))
    assert scalar("yes") == "'yes'" and scalar("012") == "'012'" and scalar("Plain") == "Plain"


def test_appending_keeps_the_file_and_inserts_before_trailing_top_level_keys(tmp_path: Path) -> None:
    original = config_path().read_text()
    de = discovered("Reference Codes", "Reference_Codes", Code="Text(20) primary-key", Label="Text(100)")
    s = suggest(de, {d.name for d in load_config().data_extensions})
    text = appended_text(original, lambda dash: [entry_yaml(s, dash)])
    config = checked(original, text, [s.name])
    assert [d.name for d in config.data_extensions][-1] == "reference_codes" and config.segments is not None
    assert text.replace(entry_yaml(s, 2), "", 1).replace("\n\n\n", "\n\n") == original
    with pytest.raises(ValueError, match="would change more than the new entries"):
        checked(original, text.replace("lookback_days: 1", "lookback_days: 2"), [s.name])


def test_appending_to_an_indentless_list_at_the_end_of_a_file_without_newline() -> None:
    original = 'start_date: "2026-10-01"\ndata_extensions:\n- name: a\n  external_key: A\n  sync: full'
    de = discovered("B", "B", Code="Text(5) primary-key")
    s = suggest(de, {"a"})
    text = appended_text(original, lambda dash: [entry_yaml(s, dash)])
    config = checked(original, text, ["b"])
    assert [d.name for d in config.data_extensions] == ["a", "b"] and text.startswith(original + "\n")


def test_a_new_file_holds_the_entries_and_a_suggested_start(tmp_path: Path) -> None:
    de = discovered("Reference Codes", "Reference_Codes", Code="Text(20) primary-key")
    text = new_config_text([entry_yaml(suggest(de, set()))], dt.date(2026, 10, 1))
    config = checked(None, text, ["reference_codes"])
    assert isinstance(config, ProjectConfig) and config.start_date == dt.date(2026, 10, 1)
    assert "# suggested: the first daily partition" in text
