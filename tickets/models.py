"""Tickets: the record of a conversation handed to humans (agent screens come with the next issue)."""

from django.db import models


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "open"
        ASSIGNED = "assigned", "assigned"
        PENDING_CUSTOMER = "pending_customer", "pending customer"
        RESOLVED = "resolved", "resolved"
        CLOSED = "closed", "closed"

    class Reason(models.TextChoices):
        CUSTOMER_ASKED = "customer_asked", "customer asked for a human"
        AI_CANNOT_ANSWER = "ai_cannot_answer", "the AI could not answer"
        REPEATED_FALLBACKS = "repeated_fallbacks", "too many fallback answers in a row"
        MANUAL = "manual", "opened manually"

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.PROTECT,
                                     related_name="tickets")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    subject = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one ticket in progress per conversation: a second handoff reuses it.
            models.UniqueConstraint(fields=["conversation"], condition=models.Q(status__in=["open", "assigned",
                                                                                          "pending_customer"]),
                                    name="one_active_ticket_per_conversation"),
        ]

    def __str__(self) -> str:
        return f"Ticket #{self.pk} ({self.status})"
