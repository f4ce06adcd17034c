"""Delivering outbox events: the WatchEvents stream and outbound webhooks (docs/events.md)."""
