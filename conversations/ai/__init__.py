"""The AI side of a conversation: the tenant's LLM provider, the prompt, and the circuit breaker around it.

See docs/AI.md. Modules: `prompt` (template and knowledge format, no Django), `models` (AIProvider),
`llm` (one chat-completions call), `breaker` (per-tenant breaker in Redis), `services`, `selectors`, `admin`.
"""
