"""Dagster resources: the Marketing Cloud and Experience Platform connections, the lake, the warehouse.

Credentials come from the environment through `dg.EnvVar` (resolved in the run worker, never stored in
the definition snapshot). With no credentials set, the Marketing Cloud and Experience Platform resources
talk to the local sandboxes that `make run` (or `python -m sfmc_assets.sandboxes`) starts; they find them
through the discovery files the sandboxes write. Switching to the real services is setting the variables,
no code change.
"""

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field, PrivateAttr

from sfmc_assets.lib import settings
from sfmc_assets.lib.experience_platform import SMALL_FILE_LIMIT_BYTES, ExperiencePlatformClient
from sfmc_assets.lib.http import ServiceClient
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.client import DEFAULT_MAX_CONCURRENCY
from sfmc_assets.lib.retrying import LogSink, RetrySettings
from sfmc_assets.lib.warehouse import PostgresWarehouse, Warehouse, open_warehouse

C = TypeVar("C", bound=ServiceClient)
SFMC_ENV_VARS = ("SFMC_CLIENT_ID", "SFMC_CLIENT_SECRET", "SFMC_AUTH_BASE_URI")


def _sandbox_discovery(path: Path, service: str, hint_vars: tuple[str, ...]) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise dg.Failure(
            description=(
                f"No {service} credentials are set ({', '.join(hint_vars)}) and no local sandbox is running "
                f"(no discovery file at {path}). Start the sandboxes with `make run` or "
                "`python -m sfmc_assets.sandboxes serve`, or set the variables to use the real service."
            ),
            allow_retries=False,
        ) from None


class _ClientsResource(dg.ConfigurableResource):
    """A resource that hands out service clients and closes them (their connection pools) after the run."""

    _clients: list[ServiceClient] = PrivateAttr(default_factory=list)

    def _kept(self, client: C) -> C:
        self._clients.append(client)
        return client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


class MarketingCloudResource(_ClientsResource):
    """A Marketing Cloud account (server-to-server installed package), or the local sandbox.

    Leave `client_id` unset to use the sandbox. The secret is excluded from `repr` and never logged.
    """

    client_id: str | None = Field(default=None, description="Installed package client id (SFMC_CLIENT_ID).")
    client_secret: str | None = Field(default=None, repr=False, description="Client secret (SFMC_CLIENT_SECRET).")
    auth_base_uri: str | None = Field(
        default=None,
        description="Authentication base URI or bare subdomain (SFMC_AUTH_BASE_URI), "
        "e.g. https://mcxxxx.auth.marketingcloudapis.com/",
    )
    account_id: str | None = Field(default=None, description="Business unit MID (SFMC_ACCOUNT_ID), optional.")
    page_size: int = Field(default=2500, description="Rows per page (Marketing Cloud's maximum is 2500).")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY,
                                 description="Pages fetched in parallel per data extension.")
    timeout_s: float = Field(default=120.0, description="Read timeout of one request.")
    max_attempts: int = Field(default=8, description="Attempts per request (429, 5xx, timeouts, drops).")
    max_retry_s: float = Field(default=300.0, description="Upper bound on the time spent retrying one request.")
    backoff_initial_s: float = Field(default=1.0, description="First backoff step (exponential, jittered).")
    sandbox_discovery_file: str | None = Field(
        default=None, description="Where the local sandbox publishes its address (default under SFMC_ASSETS_HOME)."
    )

    @property
    def uses_sandbox(self) -> bool:
        return not self.client_id

    def _connection(self) -> dict[str, Any]:
        if not self.uses_sandbox:
            if not (self.client_secret and self.auth_base_uri):
                raise dg.Failure(
                    description="SFMC_CLIENT_ID is set but SFMC_CLIENT_SECRET or SFMC_AUTH_BASE_URI is not.",
                    allow_retries=False,
                )
            return {"auth_base_uri": self.auth_base_uri, "client_id": self.client_id,
                    "client_secret": self.client_secret, "account_id": self.account_id}
        path = Path(self.sandbox_discovery_file or settings.sandbox_dir() / "marketing_cloud.json")
        found = _sandbox_discovery(path, "Marketing Cloud", SFMC_ENV_VARS)
        return {k: found.get(k) for k in ("auth_base_uri", "client_id", "client_secret", "account_id")}

    def get_client(self, logger: LogSink | None = None) -> MarketingCloudClient:
        """A client for this run (closed when the run's resources are torn down)."""
        conn = self._connection()
        client = MarketingCloudClient(
            conn["auth_base_uri"], conn["client_id"], conn["client_secret"], conn.get("account_id"),
            timeout=(10.0, self.timeout_s),
            retry=RetrySettings(max_attempts=self.max_attempts, max_total_s=self.max_retry_s,
                                backoff_initial_s=self.backoff_initial_s),
            pool_size=self.max_concurrency + 2,
            logger=logger,
            token_cache=settings.token_cache_dir(),
        )
        return self._kept(client)


AEP_ENV_VARS = ("AEP_CLIENT_ID", "AEP_CLIENT_SECRET", "AEP_ORG_ID", "AEP_SANDBOX_NAME")


class ExperiencePlatformResource(_ClientsResource):
    """An Adobe Experience Platform org and sandbox (OAuth server-to-server credential), or the local sandbox.

    Leave `client_id` unset to use the local sandbox. The secret is excluded from `repr` and never logged.
    """

    client_id: str | None = Field(default=None, description="Developer Console client id (AEP_CLIENT_ID).")
    client_secret: str | None = Field(default=None, repr=False, description="Client secret (AEP_CLIENT_SECRET).")
    org_id: str | None = Field(default=None, description="IMS org id, ...@AdobeOrg (AEP_ORG_ID).")
    sandbox_name: str = Field(default="prod", description="Platform sandbox (AEP_SANDBOX_NAME).")
    scopes: str | None = Field(default=None, description="IMS scopes, comma-separated (AEP_SCOPES).")
    ims_url: str = Field(default="https://ims-na1.adobelogin.com", description="IMS host (AEP_IMS_URL).")
    platform_url: str = Field(default="https://platform.adobe.io", description="Platform gateway (AEP_PLATFORM_URL).")
    batch_deadline_s: float = Field(default=900.0, description="How long a batch may stay loading/processing.")
    poll_initial_s: float = Field(default=1.0, description="First wait between batch status polls (backs off).")
    publish_concurrency: int = Field(
        default=16, ge=1, description="Days of one publish step in flight at once (each a batch Platform "
        "processes on its own; the aep_api pool bounds how many publish steps run at once).")
    batches_per_minute: float = Field(
        default=120.0, gt=0, description="Batches a publish step creates per minute at most (Platform's guardrail "
        "is 138 per minute per user in older documentation, 2,000 in current).")
    backoff_initial_s: float = Field(default=1.0, description="First retry backoff step.")
    max_file_bytes: int = Field(default=SMALL_FILE_LIMIT_BYTES,
                                description="Largest file one upload sends; a larger day is split into several.")
    sandbox_discovery_file: str | None = Field(default=None, description="Local sandbox discovery file.")

    def get_client(self, logger: LogSink | None = None) -> ExperiencePlatformClient:
        retry = RetrySettings(max_attempts=6, backoff_initial_s=self.backoff_initial_s)
        if self.client_id:
            if not (self.client_secret and self.org_id):
                raise dg.Failure(description="AEP_CLIENT_ID is set but AEP_CLIENT_SECRET or AEP_ORG_ID is not.",
                                 allow_retries=False)
            kwargs = {"scopes": self.scopes} if self.scopes else {}
            client = ExperiencePlatformClient(
                client_id=self.client_id, client_secret=self.client_secret, org_id=self.org_id,
                sandbox_name=self.sandbox_name, ims_url=self.ims_url, platform_url=self.platform_url,
                retry=retry, logger=logger, token_cache=settings.token_cache_dir(),
                max_file_bytes=self.max_file_bytes, **kwargs)
        else:
            path = Path(self.sandbox_discovery_file or settings.sandbox_dir() / "experience_platform.json")
            client = ExperiencePlatformClient.from_discovery(
                _sandbox_discovery(path, "Experience Platform", AEP_ENV_VARS), retry=retry, logger=logger,
                token_cache=settings.token_cache_dir(), max_file_bytes=self.max_file_bytes)
        return self._kept(client)


class LakeResource(dg.ConfigurableResource):
    """Where partition files live: a local folder or any fsspec/UPath URI (SFMC_ASSETS_LAKE_URI)."""

    base_uri: str = Field(description="Base location, e.g. /data/lake or s3://bucket/sfmc")

    def lake(self) -> ParquetLake:
        return ParquetLake(self.base_uri)


class WarehouseResource(dg.ConfigurableResource):
    """Where the segment-ready tables live (SFMC_ASSETS_WAREHOUSE): a DuckDB file, or PostgreSQL when run
    workers on several machines write segment days at once (docs/deploy.md)."""

    path: str = Field(description="Path of the DuckDB file, or a PostgreSQL URL (postgresql://user@host/db; "
                                  "the password from PGPASSWORD).")

    def warehouse(self) -> Warehouse | PostgresWarehouse:
        return open_warehouse(self.path)


def marketing_cloud_resource() -> MarketingCloudResource:
    """Real credentials when SFMC_CLIENT_ID is set (as EnvVars, resolved at run time), else the sandbox."""
    if os.environ.get("SFMC_CLIENT_ID"):
        return MarketingCloudResource(
            client_id=dg.EnvVar("SFMC_CLIENT_ID"),
            client_secret=dg.EnvVar("SFMC_CLIENT_SECRET"),
            auth_base_uri=dg.EnvVar("SFMC_AUTH_BASE_URI"),
            account_id=dg.EnvVar("SFMC_ACCOUNT_ID") if os.environ.get("SFMC_ACCOUNT_ID") else None,
        )
    return MarketingCloudResource()


def experience_platform_resource() -> ExperiencePlatformResource:
    """Real credentials when AEP_CLIENT_ID is set (EnvVars resolved at run time), else the local sandbox."""
    if not os.environ.get("AEP_CLIENT_ID"):
        return ExperiencePlatformResource()
    optional = {name: dg.EnvVar(var) for name, var in (
        ("sandbox_name", "AEP_SANDBOX_NAME"), ("scopes", "AEP_SCOPES"), ("ims_url", "AEP_IMS_URL"),
        ("platform_url", "AEP_PLATFORM_URL")) if os.environ.get(var)}
    return ExperiencePlatformResource(client_id=dg.EnvVar("AEP_CLIENT_ID"),
                                      client_secret=dg.EnvVar("AEP_CLIENT_SECRET"),
                                      org_id=dg.EnvVar("AEP_ORG_ID"), **optional)


def warehouse_resource() -> WarehouseResource:
    if os.environ.get("SFMC_ASSETS_WAREHOUSE"):
        return WarehouseResource(path=dg.EnvVar("SFMC_ASSETS_WAREHOUSE"))
    return WarehouseResource(path=str(settings.warehouse_path()))


def lake_resource() -> LakeResource:
    if os.environ.get("SFMC_ASSETS_LAKE_URI"):
        return LakeResource(base_uri=dg.EnvVar("SFMC_ASSETS_LAKE_URI"))
    return LakeResource(base_uri=settings.lake_uri())
