from django.apps import AppConfig
from django.core.signals import request_finished

from tenants.dramatiq import close_thread_broker_connection


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self):
        request_finished.connect(close_thread_broker_connection, dispatch_uid="close_thread_broker_connection")
