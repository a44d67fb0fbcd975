"""Route handlers: each parses with :mod:`genledger.api.wire`, calls the gateway, renders."""
