"""Test helpers for the client suite: scripted mock servers and a sync/async harness."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from genledger.client import AsyncClient, Client

BASE_URL = "http://testserver/api/v1"
API_KEY = "sk-gl-test"
GENERATION_ID = "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG"

Handler = Callable[[httpx.Request], httpx.Response]


def sample_generation(**overrides: Any) -> dict[str, Any]:
    """A generation ``data`` object with every contract key (and the optional ids)."""
    data: dict[str, Any] = {
        "id": GENERATION_ID,
        "upstream_id": "chatcmpl-abc123",
        "total_cost": 0.00123,
        "cache_discount": None,
        "upstream_inference_cost": None,
        "created_at": "2024-07-15T23:33:19.433273+00:00",
        "model": "openai/gpt-4o-mini",
        "app_id": None,
        "streamed": True,
        "cancelled": False,
        "provider_name": "OpenAI",
        "latency": 412.5,
        "moderation_latency": None,
        "generation_time": 1380.0,
        "finish_reason": "stop",
        "tokens_prompt": 12,
        "tokens_completion": 34,
        "native_tokens_prompt": 12,
        "native_tokens_completion": 34,
        "native_tokens_completion_images": None,
        "native_tokens_reasoning": 0,
        "native_tokens_cached": 0,
        "num_media_prompt": None,
        "num_input_audio_prompt": None,
        "num_media_completion": 0,
        "num_search_results": None,
        "origin": "",
        "usage": 0.00123,
        "is_byok": False,
        "native_finish_reason": "stop",
        "external_user": None,
        "api_type": "completions",
        "router": None,
        "data_region": "global",
        "http_referer": None,
        "user_agent": "genledger-tests",
        "preset_id": None,
        "service_tier": None,
        "web_search_engine": None,
        "workspace_id": None,
        "num_fetches": None,
        "provider_responses": [
            {
                "status": 200,
                "provider_name": "OpenAI",
                "id": "chatcmpl-abc123",
                "latency": 400.0,
                "is_byok": False,
            }
        ],
        "request_id": "req-1",
        "session_id": None,
        "response_cache_source_id": None,
    }
    data.update(overrides)
    return data


def error_body(status: int, message: str = "boom", **extra: Any) -> dict[str, Any]:
    """The contract's error envelope for ``status``."""
    return {"error": {"code": status, "message": message, **extra}}


@dataclass
class Reply:
    """One scripted answer: a response to build, or an httpx exception to raise."""

    status: int = 200
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raise_: type[httpx.RequestError] | None = None

    def build(self, request: httpx.Request) -> httpx.Response:
        if self.raise_ is not None:
            raise self.raise_("scripted failure", request=request)
        if self.content is not None:
            return httpx.Response(self.status, content=self.content, headers=self.headers)
        return httpx.Response(self.status, json=self.json, headers=self.headers)


def ok(data: Any) -> Reply:
    """A 200 with ``{"data": data}``."""
    return Reply(200, json={"data": data})


def fail(status: int, message: str = "boom", headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    """An error status with the JSON envelope."""
    return Reply(status, json=error_body(status, message, **extra), headers=headers or {})


def scripted(*replies: Reply) -> Handler:
    """A handler answering with ``replies`` in order, repeating the last one forever."""
    remaining = list(replies)

    def handle(request: httpx.Request) -> httpx.Response:
        reply = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return reply.build(request)

    return handle


class Harness:
    """Builds a ``Client`` or an ``AsyncClient`` on a mock transport and records what happens.

    ``requests`` holds every request the transport saw, ``sleeps`` every delay the client
    asked to sleep (the recorded sleep returns at once). ``call`` invokes a dotted method
    (``"generations.get_generation"``) and awaits it when the client is async, so one test
    body covers both clients.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self._http_clients: list[httpx.Client | httpx.AsyncClient] = []

    @property
    def is_async(self) -> bool:
        return self.kind == "async"

    def transport(self, handler: Handler) -> httpx.MockTransport:
        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        return httpx.MockTransport(record)

    def http_client(self, handler: Handler, **kwargs: Any) -> httpx.Client | httpx.AsyncClient:
        http: httpx.Client | httpx.AsyncClient
        if self.is_async:
            http = httpx.AsyncClient(transport=self.transport(handler), **kwargs)
        else:
            http = httpx.Client(transport=self.transport(handler), **kwargs)
        self._http_clients.append(http)
        return http

    def client(self, handler: Handler, *, real_sleep: bool = False, **kwargs: Any) -> Client | AsyncClient:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("base_url", BASE_URL)
        kwargs.setdefault("http_client", self.http_client(handler))
        if self.is_async:
            if not real_sleep:
                kwargs.setdefault("sleep", self._async_sleep)
            return AsyncClient(**kwargs)
        if not real_sleep:
            kwargs.setdefault("sleep", self.sleeps.append)
        return Client(**kwargs)

    async def _async_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def call(self, client: Client | AsyncClient, method: str, **kwargs: Any) -> Any:
        target: Any = client
        for part in method.split("."):
            target = getattr(target, part)
        result = target(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def close(self, client: Client | AsyncClient) -> None:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()

    async def aclose(self) -> None:
        for http in self._http_clients:
            if isinstance(http, httpx.AsyncClient):
                await http.aclose()
            else:
                http.close()
