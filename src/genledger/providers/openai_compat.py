"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, ...), over pooled aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from genledger.config import ProviderConfig
from genledger.core.chat import Completion, normalize_finish_reason
from genledger.core.failures import FailureKind, stream_error_kind
from genledger.core.usage import from_openai
from genledger.providers.base import ChatStream, UpstreamCall
from genledger.providers.http import HttpProvider


class OpenAICompatProvider(HttpProvider):
    """``POST {base_url}/chat/completions``, streamed or not, asking for usage on streams."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        assert config.base_url is not None
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        super().__init__(name, config, config.base_url.rstrip("/") + "/chat/completions", headers)

    def _payload(self, call: UpstreamCall, *, stream: bool) -> bytes:
        request = call.request
        body: dict[str, Any] = dict(request.params)
        body["model"] = call.upstream_model
        body["messages"] = request.messages
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.user is not None:
            body["user"] = request.user
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def _completion(self, raw: bytes) -> Completion:
        try:
            body = orjson.loads(raw)
            choice = body["choices"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise self._failure(
                FailureKind.INVALID_RESPONSE, f"{self.display_name} sent an invalid response", raw=raw
            ) from None
        if not isinstance(body, dict):
            raise self._failure(FailureKind.INVALID_RESPONSE, "response is not an object", raw=raw)
        native = choice.get("finish_reason") if isinstance(choice, dict) else None
        upstream_id = body.get("id")
        return Completion(
            body=body,
            usage=from_openai(body.get("usage")),
            finish_reason=normalize_finish_reason(native),
            native_finish_reason=native,
            upstream_id=upstream_id if isinstance(upstream_id, str) else None,
        )

    async def _events(self, data: AsyncIterator[bytes], stream: ChatStream) -> AsyncIterator[dict[str, Any]]:
        async for line in data:
            if line == b"[DONE]":
                return
            try:
                chunk = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise self._failure(
                    FailureKind.INVALID_RESPONSE, f"{self.display_name} sent an invalid chunk", raw=line
                ) from None
            if not isinstance(chunk, dict):
                raise self._failure(FailureKind.INVALID_RESPONSE, "chunk is not an object", raw=line)
            if "error" in chunk:
                raise self._failure(stream_error_kind(chunk["error"]), "error in stream", raw=chunk["error"])
            if isinstance(chunk.get("id"), str):
                stream.upstream_id = chunk["id"]
            usage = from_openai(chunk.get("usage"))
            if usage is not None:
                stream.usage = usage
            choices = chunk.get("choices")
            if not choices:
                continue  # the usage-only chunk: the gateway sends its own
            native = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
            if native:
                stream.native_finish_reason = native
                stream.finish_reason = normalize_finish_reason(native)
            yield chunk
        raise self._failure(FailureKind.INVALID_RESPONSE, f"{self.display_name} ended the stream early")
