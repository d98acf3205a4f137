"""The token cache of the HTTP core, over HTTP against both sandboxes: shared by processes, encrypted, renewed.

Each client instance stands for one step process (each has its own session and in-memory cache); the
processes test spawns real ones. The Marketing Cloud sandbox is set to block a second token request with
429 / errorcode 50200 where a test claims one request is enough.
"""

import datetime as dt
import multiprocessing
import stat
from pathlib import Path

import pytest

from sfmc_assets.lib.http import SharedTokenFile
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.rowset import discover_fields
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import FAST_RETRY
from sfmc_assets_tests.experience_platform.support import make_client

KEY = "Contacts_DE"


@pytest.fixture
def strict_mc(tmp_path: Path) -> MarketingCloudSandbox:
    """A tenant that answers more than one token request per 20 minutes with 429 / 50200."""
    sandbox = MarketingCloudSandbox(tmp_path / "mc", start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 2),
                                    rows={"Contacts_DE": 5, "Campaign_Engagement": 5, "Web_Activities": 5},
                                    token_limit=1).start()
    yield sandbox
    sandbox.stop()


def _client(sandbox: MarketingCloudSandbox, cache: Path | None, **kw: object) -> MarketingCloudClient:
    return MarketingCloudClient(sandbox.url, sandbox.client_id, kw.pop("secret", sandbox.client_secret),  # type: ignore[arg-type]
                                retry=FAST_RETRY, token_cache=cache, **kw)  # type: ignore[arg-type]


def _read_in_process(url: str, client_id: str, secret: str, cache: str) -> int:
    """A step process: its own client, one metadata call; returns the token requests it made."""
    with MarketingCloudClient(url, client_id, secret, retry=FAST_RETRY, token_cache=Path(cache)) as client:
        discover_fields(client, KEY)
        return client.counters["token_requests"]


def test_processes_started_together_share_one_token(strict_mc: MarketingCloudSandbox, tmp_path: Path) -> None:
    args = (strict_mc.url, strict_mc.client_id, strict_mc.client_secret, str(tmp_path / "tokens"))
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        requested = pool.starmap(_read_in_process, [args] * 4)
    assert sorted(requested) == [0, 0, 0, 1]  # one process asked, under the lock; the others read its file
    assert strict_mc.stats()["token"] == 1
    assert strict_mc.stats().get("token_blocked", 0) == 0


def test_without_the_shared_cache_the_strict_tenant_blocks_the_second_process(
        strict_mc: MarketingCloudSandbox) -> None:
    with _client(strict_mc, None) as first:
        discover_fields(first, KEY)
    with _client(strict_mc, None) as second, pytest.raises(MarketingCloudError) as info:
        discover_fields(second, KEY)
    message = str(info.value)
    assert "gave up after" in message and "temporarily blocked" in message and "errorcode 50200" in message
    assert strict_mc.stats()["token_blocked"] >= 1


def test_the_cache_file_is_encrypted_private_and_bound_to_the_secret(
        mc_sandbox: MarketingCloudSandbox, tmp_path: Path) -> None:
    cache = tmp_path / "tokens"
    with _client(mc_sandbox, cache) as client:
        discover_fields(client, KEY)
        token = client.session.token().value
    [path] = cache.glob("*.token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    blob = path.read_bytes()
    assert token.encode() not in blob and mc_sandbox.client_secret.encode() not in blob
    identity = f"marketing-cloud|{mc_sandbox.url}|{mc_sandbox.client_id}|"
    assert SharedTokenFile(cache, identity=identity, secret=mc_sandbox.client_secret).load().value == token
    # Another secret (a rotated one) or another client cannot read it: the file alone is useless.
    assert SharedTokenFile(cache, identity=identity, secret="another-secret").load() is None
    other = SharedTokenFile(cache, identity=identity + "x", secret=mc_sandbox.client_secret)
    other.path.write_bytes(blob)
    assert other.load() is None


def test_a_token_refused_by_the_server_is_renewed_once_for_every_process(
        mc_sandbox: MarketingCloudSandbox, tmp_path: Path) -> None:
    cache = tmp_path / "tokens"
    with _client(mc_sandbox, cache) as a, _client(mc_sandbox, cache) as b:
        discover_fields(a, KEY)
        discover_fields(b, KEY)
        assert mc_sandbox.stats()["token"] == 1 and b.counters["tokens_shared"] == 1
        mc_sandbox.expire_tokens()  # the server forgets every token, as at the end of its lifetime
        discover_fields(b, KEY)  # 401: b renews the token and stores the new one
        discover_fields(a, KEY)  # 401: a finds b's new token in the file instead of asking again
        assert mc_sandbox.stats()["token"] == 2
        assert (a.counters["token_requests"], b.counters["token_requests"]) == (1, 1)
        assert a.counters["token_replays"] == 1 and b.counters["token_replays"] == 1


def test_an_unreadable_cache_is_replaced_not_fatal(mc_sandbox: MarketingCloudSandbox, tmp_path: Path) -> None:
    cache = tmp_path / "tokens"
    with _client(mc_sandbox, cache) as client:
        discover_fields(client, KEY)
    [path] = cache.glob("*.token")
    path.write_bytes(b"not a token file")
    with _client(mc_sandbox, cache) as client:
        discover_fields(client, KEY)
        assert client.counters["token_requests"] == 1
    assert path.read_bytes() != b"not a token file"


def test_experience_platform_clients_share_one_ims_token(tmp_path: Path) -> None:
    with ExperiencePlatformSandbox(tmp_path / "aep") as sandbox:
        cache = tmp_path / "tokens"
        clients = [make_client(sandbox, token_cache=cache) for _ in range(3)]
        for client in clients:
            client.get_dataset(sandbox.discovery()["datasets"]["contacts"])
            client.close()
        assert sandbox.stats()["ims"] == 1
        assert [c.counters["token_requests"] for c in clients] == [1, 0, 0]


def test_a_cache_folder_that_cannot_be_written_degrades_to_one_token_per_process(
        mc_sandbox: MarketingCloudSandbox, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    with _client(mc_sandbox, blocked / "tokens") as client:
        discover_fields(client, KEY)
        discover_fields(client, KEY)
        assert client.counters["token_requests"] == 1
