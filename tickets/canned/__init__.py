"""Canned replies (快捷回复): an agent's prepared answers, picked with "/" in the reply box (docs/AGENTS.md,
"Canned replies")."""
