"""Search across a tenant's conversations (docs/AGENTS.md, "Searching conversations"): the message-text index
(models, terms, indexing) and the conversation-side filters (selectors). Labels and the agents' access rules are
the human side's: tickets/search/ builds on this package."""
