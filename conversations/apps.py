from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self):
        # Here, not at the top: these modules import models, which exist only once the registry is loaded.
        from conversations.ai.embeddings import tenant_embedder
        from conversations.services.knowledge_gaps import resolve_gap
        from kb.embeddings import register_embedder_resolver
        from kb.origins import register_entry_origin

        register_embedder_resolver(tenant_embedder)
        # an entry saved from an unanswered question's "add to the knowledge base" link resolves it
        register_entry_origin("gap", lambda *, object_id, entry: resolve_gap(gap_id=object_id, entry=entry))
