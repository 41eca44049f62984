from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """A tenant app installed only by the test settings, to test the tenancy plumbing itself."""

    name = "tenants.tests.probe"
    label = "probe"
