from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self):
        # Here, not at the top: services import models, which exist only once the registry is loaded.
        from conversations.services.handoff import register_handoff_receiver, register_kf_session_receiver
        from conversations.services.surveys import register_survey_receiver
        from tickets.csat import receive_survey_answer
        from tickets.services import receive_handoff, receive_kf_session_event

        register_handoff_receiver(receive_handoff)
        register_kf_session_receiver(receive_kf_session_event)
        register_survey_receiver(receive_survey_answer)
