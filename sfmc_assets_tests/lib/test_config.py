"""The configuration format: the bundled file loads, and mistakes are named at load time."""

import re
import textwrap
from pathlib import Path

import pytest

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.marketing_cloud.fields import snake_case


def test_bundled_configuration_describes_the_sandbox_data_extensions() -> None:
    config = load_config()
    assert [d.name for d in config.data_extensions] == ["contacts", "campaigns", "activities", "orders"]
    assert config.data_extension("orders").kind is None  # a generic data extension
    assert config.data_extension("contacts").field("OptIn").is_nullable  # consent may be unknown
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


GENERIC = """
start_date: "2026-10-01"
data_extensions:
  - name: preferences
    external_key: Channel_Preferences
    sync: full
    primary_key: [SubscriberKey, Channel]
    fields:
      SubscriberKey: Text(254) primary-key
      Channel: Text(20) primary-key
      OptedIn: Boolean
      Preferred Language: Locale(5)
      Score: LongNumber
    rename: {OptedIn: opted_in_flag}
    rules:
      channel: {isin: [Email, SMS, Push], required: true}
      opted_in_flag: {required: true}
"""


def _generic(tmp_path: Path, text: str = GENERIC) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_generic_data_extension_needs_no_kind(tmp_path: Path) -> None:
    de = load_config(_generic(tmp_path)).data_extension("preferences")
    assert de.kind is None and de.sync == "full" and de.delta_column is None
    assert de.key_columns(de.fields) == ("SubscriberKey", "Channel")
    assert de.clean_names(de.fields) == {"SubscriberKey": "subscriber_key", "Channel": "channel",
                                         "OptedIn": "opted_in_flag", "Preferred Language": "preferred_language",
                                         "Score": "score"}
    assert de.field("Score").type == "LongNumber" and not de.field("Score").known_type  # read as text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("    sync: full\n", ""), "needs `delta_column`"),
        (("    sync: full\n", "    sync: full\n    delta_column: Channel\n"), "remove `delta_column`"),
        (("    sync: full\n", "    sync: full\n    kind: contacts\n"), "`kind` overlay needs `sync: incremental`"),
        (("      channel: {", "      chanel: {"), "rules for ['chanel']"),
        (("{OptedIn: opted_in_flag}", "{OptedIn: channel}"), "both named 'channel'"),
        (("    primary_key: [SubscriberKey, Channel]", "    primary_key: [SubscriberKey, Chanel]"), "['Chanel'] are not among"),
        (("      channel: {isin", "      channel: {regex: '(', isin"), "does not compile"),
        (("      Score: LongNumber\n", "      Score: LongNumber\n      score: Text\n"), "names a column twice"),
    ],
)
def test_generic_configuration_errors_name_the_problem(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    assert edit[0] in GENERIC
    text = GENERIC.replace(*edit)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(_generic(tmp_path, text))


def test_an_event_mapping_derives_its_id_from_the_composite_key(tmp_path: Path) -> None:
    text = GENERIC.replace("    sync: full\n", "    delta_column: Changed\n").replace(
        "      Score: LongNumber\n", "      Score: LongNumber\n      Changed: Date\n") + textwrap.dedent("""
        aep:
          dataset: ds
          xdm_class: experience_event
          timestamp: changed
          fields: {_tenant.pref.channel: channel}
    """).replace("\n", "\n    ")
    de = load_config(_generic(tmp_path, text)).data_extension("preferences")
    assert de.aep is not None and de.aep.id_columns == ["subscriber_key", "channel"]


@pytest.mark.parametrize(
    ("source", "clean"),
    [("SubscriberKey", "subscriber_key"), ("LinkURL", "link_url"), ("Order ID", "order_id"),
     ("Prénom", "prenom"), ("2nd Address", "c_2nd_address"), ("  __x__ ", "x"), ("ABC", "abc"),
     ("Ørsted Æble", "orsted_aeble"), ("!!!", "column")],
)
def test_snake_case(source: str, clean: str) -> None:
    assert snake_case(source) == clean


def test_a_full_snapshot_needs_a_key(tmp_path: Path) -> None:
    text = GENERIC.replace("    primary_key: [SubscriberKey, Channel]\n", "").replace(" primary-key", "")
    with pytest.raises(ValueError, match="tell which rows were deleted"):
        load_config(_generic(tmp_path, text))
