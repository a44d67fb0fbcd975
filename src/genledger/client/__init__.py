"""genledger.client: the typed Python client of the Generations API, sync and async.

Usage::

    from genledger.client import Client

    with Client() as client:  # GENLEDGER_API_KEY, GENLEDGER_BASE_URL from the environment
        generation = client.generations.get_generation(id="gen-...")
        print(generation.model, generation.total_cost)
        for generation in client.generations.list(metadata={"team": "a"}):  # every page
            print(generation.id)

Depends only on httpx, pydantic and the standard library, never on the genledger server.
Errors live in :mod:`genledger.client.errors` and are re-exported here.
"""

from ._client import AsyncClient, Client
from ._models import ActivityItem, Credits, ErrorDetail, Generation, KeyInfo, ProviderResponse, RateLimit
from ._pagination import AsyncPage, AsyncPaginator, SyncPage
from ._retry import RETRYABLE_STATUS_CODES, RetryPolicy
from ._types import NOT_GIVEN, NotGiven
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BadGatewayResponseError,
    BadRequestResponseError,
    EdgeNetworkTimeoutResponseError,
    ForbiddenResponseError,
    GenledgerError,
    InternalServerResponseError,
    MissingAPIKeyError,
    NotFoundResponseError,
    PaymentRequiredResponseError,
    ProviderOverloadedResponseError,
    ResponseValidationError,
    TooManyRequestsResponseError,
    UnauthorizedResponseError,
)

__all__ = [
    "NOT_GIVEN",
    "RETRYABLE_STATUS_CODES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "ActivityItem",
    "AsyncClient",
    "AsyncPage",
    "AsyncPaginator",
    "BadGatewayResponseError",
    "BadRequestResponseError",
    "Client",
    "Credits",
    "EdgeNetworkTimeoutResponseError",
    "ErrorDetail",
    "ForbiddenResponseError",
    "Generation",
    "GenledgerError",
    "InternalServerResponseError",
    "KeyInfo",
    "MissingAPIKeyError",
    "NotFoundResponseError",
    "NotGiven",
    "PaymentRequiredResponseError",
    "ProviderOverloadedResponseError",
    "ProviderResponse",
    "RateLimit",
    "ResponseValidationError",
    "RetryPolicy",
    "SyncPage",
    "TooManyRequestsResponseError",
    "UnauthorizedResponseError",
    "__version__",
]

# Public names report the package, not the private module they live in (as httpx does).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("genledger.client._"):
        _obj.__module__ = "genledger.client"
del _name, _obj
