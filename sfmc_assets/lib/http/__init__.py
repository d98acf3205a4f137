"""The HTTP core both service clients are built on: session, OAuth token cache, retries, errors.

Plain Python (no Dagster): `ApiSession` sends calls with a bearer token and the retry policy,
`TokenCache`/`SharedTokenFile` keep the token (shared by the processes of a deployment), `ServiceError`
renders every failure with its context.
"""

from sfmc_assets.lib.http.errors import ServiceError, Transient
from sfmc_assets.lib.http.session import (
    TRANSIENT_STATUS,
    ApiSession,
    ClientCredentials,
    ServiceClient,
    ServiceErrors,
    decode_json,
    encode_query,
)
from sfmc_assets.lib.http.tokens import SharedTokenFile, Token, TokenCache

__all__ = [
    "TRANSIENT_STATUS",
    "ApiSession",
    "ClientCredentials",
    "ServiceClient",
    "ServiceError",
    "ServiceErrors",
    "SharedTokenFile",
    "Token",
    "TokenCache",
    "Transient",
    "decode_json",
    "encode_query",
]
