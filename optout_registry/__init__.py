"""The append-only, verifiable registry of honoured opt-outs (REGISTRY.md)."""
