"""The answer pipeline (DESIGN step 4): one customer message in, exactly one visible outcome out.

- claiming.py: which messages a job answers, under per-contact locks, round after round;
- rounds.py: one round: rate limits, record and route, decide, write the answers;
- decisions.py: what to say: an answer, a fallback script or a handoff, with its reasons;
- model_calls.py: asking the model, one path for answers and suggestions (trace, metrics, breaker);
- suggestions.py: the reply the AI suggests to the agent who owns a conversation.
"""

from conversations.services.answering.claiming import ClaimerSlots, answer_as_claimer, answer_contact, answer_pending
from conversations.services.answering.suggestions import draft_suggestion

__all__ = ["ClaimerSlots", "answer_as_claimer", "answer_contact", "answer_pending", "draft_suggestion"]
