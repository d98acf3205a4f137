"""Client behaviour that needs no server: base URI forms and secret redaction."""

import pytest

from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, MarketingCloudError, normalize_auth_base_uri


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://mc563885gzs27c5t9-63k636tzgm.auth.marketingcloudapis.com/",
         "https://mc563885gzs27c5t9-63k636tzgm.auth.marketingcloudapis.com/"),
        ("https://mcabc.auth.marketingcloudapis.com/v2/token", "https://mcabc.auth.marketingcloudapis.com/"),
        ("https://MCABC.auth.marketingcloudapis.com", "https://mcabc.auth.marketingcloudapis.com/"),
        ("mcabc", "https://mcabc.auth.marketingcloudapis.com/"),
        ("mcabc.auth.marketingcloudapis.com", "https://mcabc.auth.marketingcloudapis.com/"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/"),
        ("http://127.0.0.1:8123/v2/token", "http://127.0.0.1:8123/"),
    ],
)
def test_auth_base_uri_forms(given: str, expected: str) -> None:
    assert normalize_auth_base_uri(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://x", "https://"])
def test_bad_auth_base_uri_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_auth_base_uri(bad)


def test_repr_never_shows_the_secret() -> None:
    client = MarketingCloudClient("mcabc", "the-id", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(client)
    assert "the-id" in repr(client)


def test_errors_name_the_data_extension_and_request() -> None:
    err = MarketingCloudError("boom", request="GET data/v1/x", status=500, code=0)
    err.with_context(data_extension="Contacts_DE")
    assert str(err) == "boom [data extension: Contacts_DE; request: GET data/v1/x; HTTP 500; errorcode 0]"
