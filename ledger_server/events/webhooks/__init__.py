"""Outbound webhooks in the Standard Webhooks scheme: management, fan-out, dispatch, signing."""
