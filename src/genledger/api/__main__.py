"""The serving process, ``python -m genledger.api``: what ``genledger serve`` becomes once its
checks are done (see ``api/server.py``). It imports what serving needs, and no command line."""

import sys

from genledger.api.server import main

if __name__ == "__main__":
    sys.exit(main())
