"""GET /metrics: what a Prometheus scraping genledger with a management key sees."""

from __future__ import annotations

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import FAKE_PROVIDER, MODEL, Keys
from tests.gateway import GatewayServer, create_key


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_generations_spend_attempts_and_errors(
    gateway: GatewayServer, keys: Keys, upstream, database_url
):
    admin = create_key(database_url, "metrics-admin", management=True)
    scrape = lambda: httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {admin}"})  # noqa: E731
    before = samples(scrape().text)

    client = openai.OpenAI(api_key=keys.alice, base_url=gateway.base_url, max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    upstream.set_behavior("status", times=1, status=529)
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {keys.alice}"},
    )
    assert response.status_code == 529

    page = scrape()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    after = samples(page.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    labels = {"model": MODEL, "provider": FAKE_PROVIDER, "streamed": "false", "finish_reason": "length"}
    assert grew("genledger_generations_total", **labels) == 1
    assert grew("genledger_cost_usd_total", model=MODEL) == completion.usage.model_extra["cost"]
    assert grew("genledger_tokens_total", model=MODEL, kind="completion") == 3
    assert grew("genledger_upstream_attempts_total", provider=FAKE_PROVIDER, outcome="ok") == 1
    assert grew("genledger_upstream_attempts_total", provider=FAKE_PROVIDER, outcome="overloaded") == 1
    assert grew("genledger_errors_total", status="529") == 1
    assert grew("genledger_ledger_write_seconds_count") == 1


def test_metrics_need_a_management_key(gateway: GatewayServer, keys: Keys):
    assert httpx.get(gateway.url + "/metrics").status_code == 401
    ordinary = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {keys.alice}"})
    assert ordinary.status_code == 403 and ordinary.json()["error"]["code"] == 403
