"""The wire models the OpenAPI document is built from: one module per family of routes.

They describe what the renderers of :mod:`genledger.api` send (the renderers stay plain
dicts, for speed); the live fuzz test (``tests/openapi``) checks every answer against them.
Objects genledger defines forbid extra keys, so a renderer that grows a key fails there;
OpenAI- and Anthropic-shaped objects allow them, as their own schemas do.
"""
