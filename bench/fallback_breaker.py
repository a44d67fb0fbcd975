"""A dead primary endpoint and a healthy secondary: how many requests succeed, and what the
circuit breaker saves once it has opened.

Starts two fake OpenAI upstreams (the primary answers HTTP 500 to every request) and a real
gateway with two models: ``bench/ha`` (primary, falling back to the secondary) and
``bench/secondary`` (the secondary alone, the baseline). Sends ``--requests`` sequential
requests to ``bench/ha``; then, with the breaker open, alternates blocks of both models to
compare their latency. Checks the ledger afterwards. See ``bench/README.md``.

    cd /work/main && .venv/bin/python bench/fallback_breaker.py [--requests N] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from gateway_overhead import chat_body
from harness import BenchError, Children, create_key, percentile, start_gateway, start_upstream
from ledger_count import sqlite_database
from loadgen import Target, make_session, sequential
from yarl import URL

HA_MODEL: Final = "bench/ha"
BASELINE_MODEL: Final = "bench/secondary"
BREAKER_FAILURES: Final = 5
TARGET_SUCCESS: Final = 0.999
TARGET_P50_GAP_MS: Final = 1.0


def write_config(workdir: Path, database_url: str, primary: str, secondary: str) -> Path:
    config = workdir / "bench.toml"
    prices = 'prompt_price = "0.15"\ncompletion_price = "0.60"\n'
    config.write_text(
        f'database_url = "{database_url}"\n\n'
        f"[routing]\nbreaker_failures = {BREAKER_FAILURES}\nbreaker_cooldown = 30\n\n"
        f'[providers.primary]\nkind = "openai"\nbase_url = "{primary}"\ndisplay_name = "Primary"\n\n'
        f'[providers.secondary]\nkind = "openai"\nbase_url = "{secondary}"\ndisplay_name = "Secondary"\n\n'
        f'[models."{HA_MODEL}"]\nprovider = "primary"\nupstream_model = "fast"\n'
        'fallbacks = [{ provider = "secondary", upstream_model = "fast" }]\n'
        f"{prices}\n"
        f'[models."{BASELINE_MODEL}"]\nprovider = "secondary"\nupstream_model = "fast"\n{prices}'
    )
    return config


async def run(requests: int, workdir: Path, children: Children) -> dict[str, Any]:
    _, primary = start_upstream(children, workdir, "--behavior", "status:500", name="primary")
    _, secondary = start_upstream(children, workdir, name="secondary")
    async with sqlite_database(workdir) as database:
        config = write_config(workdir, database.url, primary, secondary)
        key = create_key(workdir, config)
        gateway, url = start_gateway(children, workdir, config)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        endpoint = URL(url + "/api/v1/chat/completions")
        async with make_session(1, headers) as ha_session, make_session(1, headers) as base_session:
            ha = Target("ha", endpoint, ha_session, {False: chat_body(HA_MODEL, False)})
            baseline = Target("secondary", endpoint, base_session, {False: chat_body(BASELINE_MODEL, False)})
            for _ in range(200):  # warm the gateway and the secondary's pool, not the breaker
                await baseline.call(False)
            # Phase 1: every request to the failing primary's model, from a closed breaker on.
            first = [await ha.call(False) for _ in range(requests)]
            succeeded = sum(reply is not None for reply in first)
            before_open = [x.seconds for x in first[:BREAKER_FAILURES] if x is not None]
            after_open = [x.seconds for x in first[BREAKER_FAILURES:] if x is not None]
            # Phase 2: with the breaker open, the fallback model against the secondary alone.
            replies = await sequential([ha, baseline], False, requests)
            paired = {name: [r.seconds for r in each] for name, each in replies.items()}
        counted = await database.count_generations()
        gateway.check_alive()
    ok = ha.total_ok + baseline.total_ok
    gap = percentile(paired["ha"], 50) - percentile(paired["secondary"], 50)
    return {
        "requests": requests,
        "succeeded": succeeded,
        "success_rate": succeeded / requests,
        "p50_ms_while_breaker_closed": percentile(before_open, 50) * 1000 if before_open else None,
        "p50_ms_after_breaker_open": percentile(after_open, 50) * 1000,
        "paired_p50_ms": {name: percentile(values, 50) * 1000 for name, values in paired.items()},
        "paired_p99_ms": {name: percentile(values, 99) * 1000 for name, values in paired.items()},
        "p50_gap_ms": gap * 1000,
        "failures": ha.failures + baseline.failures,
        "ledger_rows": counted["rows"],
        "successful_requests": ok,
    }


def ledger_ok(result: dict[str, Any]) -> bool:
    return bool(result["ledger_rows"] == result["successful_requests"])


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(result: dict[str, Any]) -> str:
    met_success = result["success_rate"] >= TARGET_SUCCESS
    met_gap = result["p50_gap_ms"] <= TARGET_P50_GAP_MS
    paired = result["paired_p50_ms"]
    return "\n".join(
        [
            f"{result['requests']} sequential requests to {HA_MODEL}, its primary answering 500 to all",
            f"  succeeded: {result['succeeded']} ({result['success_rate']:.2%})",
            f"  p50 while the breaker was closed (first {BREAKER_FAILURES}): "
            f"{result['p50_ms_while_breaker_closed']:.3f} ms",
            f"  p50 after it opened: {result['p50_ms_after_breaker_open']:.3f} ms",
            f"with the breaker open, {result['requests']} requests each, in alternating blocks:",
            f"  {HA_MODEL} p50 {paired['ha']:.3f} ms, {BASELINE_MODEL} (secondary alone) p50 "
            f"{paired['secondary']:.3f} ms: gap {result['p50_gap_ms']:.3f} ms",
            f"ledger: {result['ledger_rows']} rows for {result['successful_requests']} successful requests "
            f"(warm-up included) -> {'OK' if ledger_ok(result) else 'BAD'}",
            f"target: >= {TARGET_SUCCESS:.1%} succeed: {verdict(met_success)}",
            f"target: p50 within {TARGET_P50_GAP_MS:g} ms of the secondary alone: {verdict(met_gap)}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="genledger-breaker-") as tmp:
            result = asyncio.run(run(args.requests, Path(tmp), children))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ledger_ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
