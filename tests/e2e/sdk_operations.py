"""Every operation of the official ``openrouter`` SDK, with what genledger answers to it.

The table is complete by test (``test_the_table_names_every_sdk_operation``): an SDK release that
adds an operation fails the suite until the operation is listed here, and the README's
conformance table says the same thing for readers. Outcomes:

- ``SERVED``: the SDK parses genledger's answer with its own strict validation.
- ``PENDING``: built by issue 11 on another branch; until it is merged, the route is unserved here
  and the SDK must raise its typed error (flip to ``SERVED`` once merged).
- ``UNSERVED``: genledger has no such concept; the route answers the JSON-envelope 404, which
  the SDK turns into a typed error (``NotFoundResponseError`` where the operation declares 404).

Arguments are functions of a :class:`Context` so that served operations act on real records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest


class Outcome(Enum):
    SERVED = "served"
    PENDING = "pending issue 11"
    UNSERVED = "not served"


@dataclass(frozen=True)
class Context:
    model: str  # a catalog slug, "author/slug"
    generation_id: str  # made by the calling key
    key_hash: str  # a key the management key may read, change and delete
    bearer: str  # the calling key's secret, for operations that take ``security``


Arguments = Callable[[Context], dict[str, Any]]


def _none(_: Context) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Operation:
    name: str  # "group.method" as reached from ``OpenRouter``
    outcome: Outcome
    arguments: Arguments = _none
    management: bool = False  # called with a management key (the management API)


@dataclass(frozen=True)
class Observed:
    """What one call gave: parsed, or the SDK's error class and the HTTP status."""

    operation: Operation
    parsed: bool
    error: str | None = None
    status: int | None = None
    body: str | None = None


# Where the conformance test leaves its observations, per database, for the run's summary.
RESULTS: pytest.StashKey[dict[str, list[Observed]]] = pytest.StashKey()


def summary_lines(results: dict[str, list[Observed]]) -> list[str]:
    lines = []
    for database, observed in sorted(results.items()):
        parsed = sum(1 for o in observed if o.parsed)
        typed = sum(1 for o in observed if not o.parsed and o.error and o.status == 404)
        pending = sum(1 for o in observed if o.operation.outcome is Outcome.PENDING)
        lines.append(
            f"openrouter SDK conformance ({database}): {len(observed)} operations, "
            f"{parsed} served and parsed, {typed} unserved with a typed 404 error "
            f"({pending} of them pending issue 11), {len(observed) - parsed - typed} other"
        )
    return lines


MESSAGES = [{"role": "user", "content": "hi"}]
_ID = {"id": "unknown"}


def _static(**arguments: Any) -> Arguments:
    return lambda _: arguments


def _author_slug(context: Context) -> dict[str, Any]:
    author, slug = context.model.split("/", 1)
    return {"author": author, "slug": slug}


EMBEDDING_MODEL = "acme/embed"  # the conformance gateway's embedding model, on the fake upstream
S, P, U = Outcome.SERVED, Outcome.PENDING, Outcome.UNSERVED

OPERATIONS: tuple[Operation, ...] = (
    # Served by genledger.
    Operation("chat.send", S, lambda c: {"model": c.model, "messages": MESSAGES}),
    Operation("credits.get_credits", S),
    Operation("analytics.get_user_activity", S, _none, management=True),
    Operation("generations.get_generation", S, lambda c: {"id": c.generation_id}),
    Operation("generations.list_generation_content", S, lambda c: {"id": c.generation_id}),
    Operation(
        "generations.submit_feedback",
        S,
        lambda c: {"generation_id": c.generation_id, "category": "other", "comment": "conformance"},
    ),
    Operation("models.list", S),
    Operation("models.list_for_user", S, lambda c: {"security": {"bearer": c.bearer}}),
    Operation("api_keys.get_current_key_metadata", S),
    Operation("api_keys.list", S, _none, management=True),
    Operation("api_keys.create", S, _static(name="conformance"), management=True),
    Operation("api_keys.get", S, lambda c: {"hash": c.key_hash}, management=True),
    Operation("api_keys.update", S, lambda c: {"hash": c.key_hash, "name": "renamed"}, management=True),
    Operation("api_keys.delete", S, lambda c: {"hash": c.key_hash}, management=True),
    # Issue 11's routes.
    Operation("embeddings.generate", S, lambda c: {"model": EMBEDDING_MODEL, "input": "hi"}),
    Operation("embeddings.list_models", S),
    Operation("endpoints.list", S, _author_slug),
    Operation("providers.list", S),
    Operation("models.count", S),
    Operation("models.get", S, _author_slug),
    Operation("responses.send", S, lambda c: {"model": c.model, "input": "hi"}),
    Operation("beta.responses.send", S, lambda c: {"model": c.model, "input": "hi"}),
    # Not served: no such concept in a self-hosted gateway.
    Operation("analytics.get_analytics_meta", U),
    Operation("analytics.query_analytics", U, _static(metrics=["requests"])),
    Operation("alpha.decisions.create", U, _static(model="m", questions={}, state="s")),
    Operation("system_one.create", U, _static(model="m", questions={}, state="s")),
    Operation("tts.create_speech", U, _static(model="m", input="hi")),
    Operation(
        "stt.create_transcription", U, _static(model="m", input_audio={"url": "http://127.0.0.1/a.wav"})
    ),
    Operation("stt.create_transcription_multipart", U, _static(model="m")),
    Operation("o_auth.exchange_auth_code_for_api_key", U, _static(code="c")),
    Operation("o_auth.create_auth_code", U, _static(callback_url="http://127.0.0.1/cb")),
    Operation("o_auth.list_oauth_jwks", U),
    Operation(
        "o_auth.create_oauth_token",
        U,
        _static(
            federation_policy_id="p",
            grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
            subject_token="t",
            subject_token_type="urn:ietf:params:oauth:token-type:jwt",
        ),
    ),
    Operation("batch.list", U),
    Operation(
        "batch.create_batches",
        U,
        _static(
            endpoint="/v1/chat/completions",
            model="m",
            requests=[{"custom_id": "1", "body": {"messages": MESSAGES}}],
        ),
    ),
    Operation("batch.delete", U, _static(**_ID)),
    Operation("batch.get_batches", U, _static(**_ID)),
    Operation("benchmarks.get_benchmarks", U),
    Operation("byok.list", U),
    Operation("byok.create", U, _static(key="k", provider="openai")),
    Operation("byok.delete", U, _static(**_ID)),
    Operation("byok.get", U, _static(**_ID)),
    Operation("byok.update", U, _static(**_ID)),
    Operation("classifications.get_task_classifications", U),
    Operation("containers.list_container_files", U, _static(container_id="c")),
    Operation("containers.get_container_file", U, _static(container_id="c", file_id="f")),
    Operation("containers.download_container_file_content", U, _static(container_id="c", file_id="f")),
    Operation("containers.promote_container_file", U, _static(container_id="c", file_id="f")),
    Operation("datasets.get_app_rankings", U),
    Operation("datasets.get_rankings_daily", U),
    Operation("datasets.get_session_cost", U),
    Operation("endpoints.list_zdr_endpoints", U),
    Operation("external_users.list", U),
    Operation("external_users.create", U, _static(user="u")),
    Operation("external_users.delete", U, _static(user="u")),
    Operation("external_users.get", U, _static(user="u")),
    Operation("external_users.update", U, _static(user="u", is_active=True)),
    Operation("files.list", U),
    Operation("files.upload", U, _static(file={"file_name": "a.txt", "content": b"x"})),
    Operation("files.delete", U, _static(file_id="f")),
    Operation("files.retrieve", U, _static(file_id="f")),
    Operation("files.download", U, _static(file_id="f")),
    Operation("guardrails.list", U),
    Operation("guardrails.create", U, _static(name="g")),
    Operation("guardrails.delete", U, _static(**_ID)),
    Operation("guardrails.get", U, _static(**_ID)),
    Operation("guardrails.update", U, _static(**_ID)),
    Operation("guardrails.list_guardrail_key_assignments", U, _static(**_ID)),
    Operation("guardrails.bulk_assign_keys", U, _static(key_hashes=["h"], **_ID)),
    Operation("guardrails.bulk_unassign_keys", U, _static(key_hashes=["h"], **_ID)),
    Operation("guardrails.list_guardrail_member_assignments", U, _static(**_ID)),
    Operation("guardrails.bulk_assign_members", U, _static(member_user_ids=["u"], **_ID)),
    Operation("guardrails.bulk_unassign_members", U, _static(member_user_ids=["u"], **_ID)),
    Operation("guardrails.list_key_assignments", U),
    Operation("guardrails.list_member_assignments", U),
    Operation("images.generate", U, _static(model="m", prompt="p")),
    Operation("images.list_models", U),
    Operation("images.list_model_endpoints", U, _author_slug),
    Operation("observability.list", U),
    Operation("observability.create", U, _static(config={}, name="o", type_="arize")),
    Operation("observability.delete", U, _static(**_ID)),
    Operation("observability.get", U, _static(**_ID)),
    Operation("observability.update", U, _static(**_ID)),
    Operation("organization.list_members", U),
    Operation("organization.get_settings", U),
    Operation("organization.update_settings", U, _static(is_filtered_model_catalog_enabled=False)),
    Operation("presets.list", U),
    Operation("presets.get", U, _static(slug="p")),
    Operation("presets.create_presets_chat_completions", U, _static(slug="p", messages=MESSAGES)),
    Operation("presets.create_presets_messages", U, _static(slug="p", model="m", messages=MESSAGES)),
    Operation("presets.create_presets_responses", U, _static(slug="p")),
    Operation("presets.list_versions", U, _static(slug="p")),
    Operation("presets.get_version", U, _static(slug="p", version="1")),
    Operation("private_endpoints.list", U),
    Operation(
        "private_endpoints.create", U, _static(model_permaslug="m", provider_slug="p", upstream_model_id="u")
    ),
    Operation("private_endpoints.delete", U, _static(**_ID)),
    Operation("private_endpoints.get", U, _static(**_ID)),
    Operation("private_endpoints.update", U, _static(upstream_model_id="u", **_ID)),
    Operation("private_endpoints.activate", U, _static(**_ID)),
    Operation("private_endpoints.disable", U, _static(**_ID)),
    Operation("private_endpoints.enable", U, _static(**_ID)),
    Operation(
        "private_endpoints.update_pricing", U, _static(pricing={"prompt": "0", "completion": "0"}, **_ID)
    ),
    Operation("private_endpoints.validate", U, _static(workspace_id="w", **_ID)),
    Operation("rerank.rerank", U, _static(documents=["d"], model="m", query="q")),
    Operation("scim.list_mappings", U),
    Operation("scim.create", U, _static(role="member", scim_group_id="g", workspace_id="w")),
    Operation("scim.delete", U, _static(keep_members=True, **_ID)),
    Operation("scim.read", U, _static(**_ID)),
    Operation("scim.update", U, _static(role="member", **_ID)),
    Operation("scim.list_groups", U),
    Operation("scim.create_sync_job", U),
    Operation("scim.get_sync_job", U, _static(**_ID)),
    Operation("tools.list_tools", U, lambda c: {"security": {"bearer": c.bearer}}),
    Operation("tools.get_tool", U, lambda c: {"security": {"bearer": c.bearer}, "name": "t"}),
    Operation("vault.list_intern_connections", U, _static(intern_id="i")),
    Operation("vault.list_intern_effective_vault_secrets", U, _static(intern_id="i")),
    Operation("vault.list_intern_vault_secrets", U, _static(intern_id="i")),
    Operation("vault.delete_intern_vault_secret", U, _static(intern_id="i", name="n")),
    Operation("vault.store_intern_vault_secret", U, _static(intern_id="i", name="n", hosts=["h"], value="v")),
    Operation("vault.copy_vault_secrets_to_intern", U, _static(intern_id="i", names=["n"])),
    Operation("vault.list_vault_secrets", U),
    Operation("vault.delete_vault_secret", U, _static(name="n")),
    Operation("vault.store_vault_secret", U, _static(name="n", hosts=["h"], value="v")),
    Operation("video_generation.generate", U, _static(model="m", prompt="p")),
    Operation("video_generation.get_generation", U, _static(job_id="j")),
    Operation("video_generation.get_video_content", U, _static(job_id="j")),
    Operation("video_generation.list_videos_models", U),
    Operation("workspaces.list", U),
    Operation("workspaces.create", U, _static(name="w", slug="w")),
    Operation("workspaces.delete", U, _static(**_ID)),
    Operation("workspaces.get", U, _static(**_ID)),
    Operation("workspaces.update", U, _static(**_ID)),
    Operation("workspaces.list_members", U, _static(**_ID)),
    Operation("workspaces.bulk_add_members", U, _static(user_ids=["u"], **_ID)),
    Operation("workspaces.bulk_remove_members", U, _static(user_ids=["u"], **_ID)),
    Operation("workspaces.list_budgets", U, _static(workspace_ref="w")),
    Operation("workspaces.delete_budget", U, _static(workspace_ref="w", interval="daily")),
    Operation("workspaces.get_budget", U, _static(workspace_ref="w", interval="daily")),
    Operation("workspaces.set_budget", U, _static(workspace_ref="w", interval="daily", limit_usd=1.0)),
)
