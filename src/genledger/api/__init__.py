"""The HTTP edge: wire formats in and out, routes that only map paths to the gateway."""

from genledger.api.app import create_app

__all__ = ["create_app"]
