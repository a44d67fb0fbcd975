"""The request log of a real ``genledger serve`` (its stderr, whole): a JSON line per request,
the caller's X-Request-Id in the line and in the ledger; and not once, anywhere on stderr, a
key's secret, the prompt or the answer, through chat (whole and streamed), a failing upstream,
a stream failing midway and a 401, with content storage on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from genledger.core.ids import hash_key
from genledger.ledger import Ledger
from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.process import GatewayProcess
from tests.fakes import FakeOpenAIInThread

PROMPT = "canary-prompt-7f3a9c: the launch codes are in the blue folder"
WRONG_SECRET = "sk-gl-v1-canary-wrong-0d9e8f7a6b5c4d3e2f1a"
ANSWER = "tok tok tok"  # the fake's answer: "tok" a token


async def test_stderr_has_a_json_line_per_request_and_never_a_secret_prompt_or_answer(
    database_url: str, upstream: FakeOpenAIInThread, ledger: Ledger, tmp_path: Path
):
    settings = gateway_settings(database_url, upstream.api_url, content_storage={"enabled": True})
    settings["logging"] = {"level": "info", "format": "json"}
    _, secret = await ledger.keys.create("log-canary", limit_pico=10**12)
    auth = {"Authorization": f"Bearer {secret}"}
    messages = [{"role": "user", "content": PROMPT}]
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 5, "messages": messages}
    wrong = {"Authorization": f"Bearer {WRONG_SECRET}"}
    gateway = GatewayProcess(settings, tmp_path, "logged", log_level="info").start()
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            traced = {**auth, "X-Request-Id": "trace-whole-1"}
            whole = await http.post("/chat/completions", json=body, headers=traced)
            assert whole.status_code == 200 and ANSWER in whole.text
            streamed = await http.post("/chat/completions", json={**body, "stream": True}, headers=auth)
            assert streamed.status_code == 200 and "tok" in streamed.text
            upstream.set_behavior("status", status=500, times=1)
            failed = await http.post("/chat/completions", json=body, headers=auth)
            assert failed.status_code == 502
            upstream.set_behavior("error_mid_stream", chunks=2, times=1)
            broken = await http.post("/chat/completions", json={**body, "stream": True}, headers=auth)
            assert broken.status_code == 200 and '"error"' in broken.text
            refused = await http.post("/chat/completions", json=body, headers=wrong)
            assert refused.status_code == 401
            upstream.set_behavior("stall_mid_stream", chunks=1, delay=30, times=1)
            cut_trace = {**auth, "X-Request-Id": "trace-cut-1"}
            async with http.stream(
                "POST", "/chat/completions", json={**body, "stream": True}, headers=cut_trace
            ) as cut:
                cut_id = orjson.loads((await anext(cut.aiter_lines())).removeprefix("data: "))["id"]
            # The caller left: the stream is recorded after its line is written.
            recorded = await http.get("/generation", params={"id": whole.json()["id"]}, headers=auth)
            assert recorded.json()["data"]["request_id"] == "trace-whole-1"
    finally:
        gateway.terminate(within=30)
    stderr = gateway.output()  # stdout and stderr

    unsaid = (secret, secret.removeprefix("sk-gl-v1-"), WRONG_SECRET, PROMPT, "canary-prompt", ANSWER)
    for secret_text in unsaid:
        assert secret_text not in stderr, f"{secret_text!r} is in the gateway's stderr"

    lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = {line["request_id"]: line for line in lines if "request_id" in line}
    chats = [line for line in requests.values() if line["path"] == "/api/v1/chat/completions"]
    assert [line["status"] for line in chats] == [200, 200, 502, 200, 401, 200]
    first = requests["trace-whole-1"]
    assert first["generation_id"] == whole.json()["id"] and first["key_hash"] == hash_key(secret)[:12]
    assert first["key_name"] == "log-canary" and first["model"] == MODEL and first["attempts"] == 1
    assert first["cost_usd"] > 0
    assert chats[1]["request_id"] == streamed.headers["x-request-id"]
    assert chats[2]["generation_id"] is None and chats[2]["attempts"] == 1 and chats[2]["provider"]
    assert chats[4]["key_hash"] is None
    # A stream its caller left still names its generation, provider and attempts.
    left = requests["trace-cut-1"]
    assert (left["generation_id"], left["attempts"]) == (cut_id, 1) and left["provider"]
    # Every line is JSON (uvicorn's own and the gateway's messages too), but the banner that
    # `serve` prints on stdout, which the process's log holds too.
    others = [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert all(line.startswith("dashboard: ") for line in others), others
