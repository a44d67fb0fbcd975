"""OpenAI's ``/embeddings`` format: the request parsed once into an EmbeddingRequest, the answer
rendered once (floats, or base64 of little-endian float32 as OpenAI's clients ask by default)."""

from __future__ import annotations

import array
import base64
import sys
from typing import Any, Literal

from genledger.api.inbound import load_object
from genledger.api.openai_chat import usage_json
from genledger.api.wire import ROUTING_FIELDS, parse_routing, refuse_unknown
from genledger.core.embeddings import EmbeddingAnswer, EmbeddingInput, EmbeddingRequest
from genledger.core.usage import Usage
from genledger.errors import BadRequest

Encoding = Literal["float", "base64"]
MAX_INPUTS = 2048  # OpenAI's limit of inputs per request
MAX_DIMENSIONS = 65_536
_FIELDS = ROUTING_FIELDS | {"input", "dimensions", "encoding_format", "input_type"}


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _token(value: Any) -> int | None:
    """A token id: a non-negative integer, or a float with a whole value (``1.0``), which the
    ``openrouter`` SDK sends, its token arrays typed as numbers; None for anything else."""
    if _is_token(value):
        return int(value)
    if isinstance(value, float) and value.is_integer() and 0 <= value < 2**53:
        return int(value)
    return None


def _tokens(items: list[Any]) -> tuple[int, ...] | None:
    tokens = tuple(_token(item) for item in items)
    return None if not tokens or None in tokens else tokens  # type: ignore[return-value]


def _inputs(value: Any) -> EmbeddingInput:
    """A string, strings, a token array or token arrays; never empty, never mixed."""
    problem = "'input' must be a non-empty string, array of strings, or array of token arrays"
    if isinstance(value, str):
        if not value:
            raise BadRequest(problem, metadata={"param": "input"})
        return (value,)
    if not isinstance(value, list) or not value:
        raise BadRequest(problem, metadata={"param": "input"})
    if len(value) > MAX_INPUTS:
        raise BadRequest(f"'input' may have at most {MAX_INPUTS} items", metadata={"param": "input"})
    if all(isinstance(item, str) and item for item in value):
        return tuple(value)
    tokens = _tokens(value)
    if tokens is not None:
        return (tokens,)
    arrays = [_tokens(item) if isinstance(item, list) else None for item in value]
    if all(array is not None for array in arrays):
        return tuple(array for array in arrays if array is not None)
    for index, item in enumerate(value):
        if isinstance(item, dict):
            raise BadRequest(
                f"'input[{index}]': multimodal embedding input is not supported by this gateway",
                metadata={"param": f"input[{index}]"},
            )
    raise BadRequest(problem, metadata={"param": "input"})


def parse_embedding_request(
    raw: bytes, *, session_header: str | None = None
) -> tuple[EmbeddingRequest, Encoding]:
    """The request, and the encoding the caller wants its vectors in; 400 naming a bad field."""
    body = load_object(raw)
    refuse_unknown(body, _FIELDS)
    routing = parse_routing(body, session_header=session_header)
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_token(dimensions) or not 1 <= dimensions <= MAX_DIMENSIONS):
        raise BadRequest(
            f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}", metadata={"param": "dimensions"}
        )
    encoding: Encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be float or base64", metadata={"param": "encoding_format"})
    params: dict[str, Any] = {}
    input_type = body.get("input_type")
    if input_type is not None:
        if not isinstance(input_type, str):
            raise BadRequest("'input_type' must be a string", metadata={"param": "input_type"})
        params["input_type"] = input_type
    request = EmbeddingRequest(
        model=routing.model,
        inputs=_inputs(body.get("input")),
        dimensions=dimensions,
        user=routing.user,
        params=params,
        fallback_models=routing.fallback_models,
        provider=routing.provider,
        session_id=routing.session_id,
        metadata=routing.metadata,
    )
    return request, encoding


def _base64(vector: tuple[float, ...]) -> str:
    floats = array.array("f", vector)
    if sys.byteorder != "little":  # pragma: no cover - every platform we run on is little-endian
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode()


def embeddings_json(answer: EmbeddingAnswer, encoding: Encoding) -> dict[str, Any]:
    """OpenAI's ``list`` of ``embedding`` objects, with our id, slug, provider and the cost."""
    vectors = answer.embeddings.vectors
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64(vector) if encoding == "base64" else list(vector),
        }
        for index, vector in enumerate(vectors)
    ]
    usage = answer.embeddings.usage or Usage()
    full = usage_json(usage, answer.cost_pico)
    return {
        "object": "list",
        "id": answer.generation_id,
        "model": answer.model,
        "provider": answer.provider_name,
        "data": data,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "total_tokens": usage.total_tokens,
            "cost": full["cost"],
            "is_byok": False,
        },
    }
