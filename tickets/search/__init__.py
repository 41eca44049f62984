"""Conversation search on the agent screens and the REST API, with CSV export (docs/AGENTS.md, "Searching
conversations"): the conversation-side search (conversations/search/) plus labels and the agents' access rules."""
