"""make chaos: the whole pipeline under faults, then the checks of issue 13 (docs/guarantees.md, Chaos soak)."""
