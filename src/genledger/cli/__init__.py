"""The ``genledger`` command: serve the gateway, manage keys, read the ledger.

One module per command group; importing them registers their commands on ``app``.
"""

from genledger.cli import audit, generations, keys, report, serve
from genledger.cli._app import app

__all__ = ["app", "main"]
_COMMANDS = (audit, generations, keys, report, serve)  # imported for the commands they register


def main() -> None:
    app()
