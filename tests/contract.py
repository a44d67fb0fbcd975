"""The generation object's keys, as ``shared/reference/generation-api.md`` pins them, in order.

Shared by the server's and the client's tests, so both hold to one list.
"""

GENERATION_KEYS: tuple[str, ...] = tuple(
    [
        "id",
        "upstream_id",
        "total_cost",
        "cache_discount",
        "upstream_inference_cost",
        "created_at",
        "model",
        "app_id",
        "streamed",
        "cancelled",
        "provider_name",
        "latency",
        "moderation_latency",
        "generation_time",
        "finish_reason",
        "tokens_prompt",
        "tokens_completion",
        "native_tokens_prompt",
        "native_tokens_completion",
        "native_tokens_completion_images",
        "native_tokens_reasoning",
        "native_tokens_cached",
        "num_media_prompt",
        "num_input_audio_prompt",
        "num_media_completion",
        "num_search_results",
        "origin",
        "usage",
        "is_byok",
        "native_finish_reason",
        "external_user",
        "api_type",
        "router",
        "data_region",
        "http_referer",
        "user_agent",
        "preset_id",
        "service_tier",
        "web_search_engine",
        "workspace_id",
        "num_fetches",
        "provider_responses",
        "request_id",
        "session_id",
        "response_cache_source_id",
    ]
)
# Never null: "required" in the contract.
REQUIRED_KEYS = frozenset(
    {"id", "total_cost", "created_at", "model", "origin", "usage", "is_byok", "data_region"}
)
