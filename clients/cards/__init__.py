"""Card processor integration: gateway, card model, settlement reconciliation, processor simulator."""
