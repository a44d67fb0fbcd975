"""An export's memory stays flat however many generations it writes: batches, not the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from genledger.core.generation import Generation, ProviderAttempt
from tests.gateway import create_key, seed_generations

ROWS = 50_000
SMALL = 1_000
TOP = datetime(2026, 6, 1, tzinfo=UTC)

# Runs the command as a child and prints the child's peak RSS (Linux: KiB). Measured through a
# parent of its own, so no other child of the test process counts.
PEAK_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def make(key_id: str, i: int) -> Generation:
    return Generation(
        id=f"gen-mem-{i:08d}",
        key_id=key_id,
        created_at=TOP - timedelta(seconds=i),
        model="acme/fast-chat",
        provider_name="FakeAI",
        total_cost_pico=i * 1_000_003,
        charge_pico=i * 1_000_003,
        streamed=True,
        latency_ms=12.5,
        finish_reason="stop",
        tokens_prompt=100 + i % 50,
        tokens_completion=200,
        external_user=f"user-{i % 100}",
        session_id=f"session-{i % 1000}",
        app_title="Memory",
        user_agent="bench/1.0 " + "x" * 100,
        provider_responses=(ProviderAttempt(200, "FakeAI", 11.0, f"upstream-{i}"),),
        metadata={"team": "red", "run": str(i)},
    )


def peak_kib(folder: Path, *args: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "genledger", *args],
        cwd=folder,
        env={**os.environ, "GENLEDGER_DATABASE_URL": f"sqlite:///{folder}/genledger.db"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, peak = result.stdout.split()[-2:]
    assert code == "0", result.stderr
    return int(peak)


def test_exporting_50k_rows_takes_little_more_memory_than_exporting_1k(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/genledger.db"
    create_key(url, "mem")
    seed_generations(url, "mem", make, ROWS)
    since_small = (TOP - timedelta(seconds=SMALL - 1)).isoformat()
    small = peak_kib(tmp_path, "generations", "export", "--since", since_small, "-o", "small.ndjson")
    large = peak_kib(tmp_path, "generations", "export", "-o", "large.ndjson")
    assert len((tmp_path / "small.ndjson").read_bytes().splitlines()) == SMALL
    exported = (tmp_path / "large.ndjson").read_bytes()
    assert exported.count(b"\n") == ROWS
    growth_kib = large - small
    print(f"peak RSS: {small} KiB for {SMALL} rows, {large} KiB for {ROWS}; file {len(exported) // 1024} KiB")
    # Holding every row would take at least the file's size (65 MB; several times that as
    # objects). Measured: about 5 MB of growth (SQLite's cache, the allocator), flat in the rows.
    assert growth_kib < min(16 * 1024, len(exported) // 1024 // 4), (small, large, len(exported))
