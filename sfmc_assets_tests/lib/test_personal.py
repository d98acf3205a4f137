"""Which columns are masked: roles, e-mail and phone types, and columns named like personal data."""

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.personal import named_personal, personal_columns


def test_a_generic_data_extension_masks_columns_named_like_personal_data() -> None:
    fields = (FieldSpec(name="Id", type="Text", is_primary_key=True, is_nullable=False),
              FieldSpec(name="FirstName", type="Text"), FieldSpec(name="Mobile Number", type="Text"),
              FieldSpec(name="Date of Birth", type="Date"), FieldSpec(name="Contact", type="EmailAddress"),
              FieldSpec(name="Status", type="Text"), FieldSpec(name="Prénom", type="Text"))
    de = DataExtensionConfig(name="people", external_key="P", sync="full", fields=fields)
    assert named_personal(fields) == ["FirstName", "Mobile Number", "Date of Birth", "Contact", "Prénom"]
    assert personal_columns(de, fields) == ["first_name", "mobile_number", "date_of_birth", "contact", "prenom"]
