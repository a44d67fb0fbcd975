"""genledger: a self-hosted LLM gateway that records what every model call did and cost.

The package root imports nothing: ``genledger.client`` must stay importable without the
server's dependencies, so the gateway lives in its own subpackages.
"""

__version__ = "0.1.0"
