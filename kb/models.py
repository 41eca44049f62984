"""kb models: filled in by later issues (see docs/ARCHITECTURE.md)."""
