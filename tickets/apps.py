from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self):
        # Here, not at the top: services import models, which exist only once the registry is loaded.
        from conversations.services.handoff import register_handoff_receiver
        from tickets.services import receive_handoff

        register_handoff_receiver(receive_handoff)
