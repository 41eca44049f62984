from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self):
        from django.core.signals import request_finished

        from tenants.dramatiq import close_thread_broker_connection

        request_finished.connect(close_thread_broker_connection, dispatch_uid="close_thread_broker_connection")
