"""``genledger`` as the CLI runs it, plus bench-only switches: never part of the product.

    python bench/gateway_launcher.py serve --config bench.toml --port 8080

With ``GENLEDGER_BENCH_TRACEMALLOC=/some/prefix`` set, the first ``SIGUSR2`` starts
tracemalloc (25 frames deep) and every ``SIGUSR2`` (the first included) writes a snapshot to
``/some/prefix.<n>.snapshot`` (n = 0, 1, ...), then touches ``<that file>.done``, so the
bench can diff two snapshots taken in the gateway process (``bench/soak.py --tracemalloc``).
Tracing starts at the first signal, not at start-up: the gateway runs at full speed until
then (tracing from start-up made it miss a 60 s start on a loaded host), and what the last
snapshot holds that the first does not is exactly what was allocated since and is still
alive: what grew. The snapshot is taken in the signal handler, on the main thread, between
two bytecodes of the event loop: the loop stalls while it is written, which a soak tolerates.

``genledger serve`` replaces itself with its serving process (``python -m genledger.api``);
here that process is this script again (``--serving``), so the switches hold in it too.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

TRACEMALLOC_ENV = "GENLEDGER_BENCH_TRACEMALLOC"
FRAMES = 25


def _snapshot_on_signal(prefix: str) -> None:
    taken = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        path = Path(f"{prefix}.{taken}.snapshot")
        tracemalloc.take_snapshot().dump(str(path))
        Path(f"{path}.done").touch()
        taken += 1

    signal.signal(signal.SIGUSR2, dump)


def _serving_through_this_script() -> None:
    import genledger.api.server as server

    if not hasattr(server, "serving_command"):
        return  # a revision that serves in the command's own process
    command = server.serving_command

    def through_this_script(*args: Any, **options: Any) -> list[str]:
        # [python, -m, genledger.api, options...] -> [python, this script, --serving, options...]
        return [sys.executable, str(Path(__file__).resolve()), "--serving", *command(*args, **options)[3:]]

    server.serving_command = through_this_script


def main() -> None:
    prefix = os.environ.get(TRACEMALLOC_ENV)
    if prefix:
        _snapshot_on_signal(prefix)
    if sys.argv[1:2] == ["--serving"]:
        from genledger.api.server import main as serving

        sys.exit(serving(sys.argv[2:]))
    _serving_through_this_script()
    from genledger.cli import main as cli

    sys.argv[0] = "genledger"
    cli()


if __name__ == "__main__":
    main()
