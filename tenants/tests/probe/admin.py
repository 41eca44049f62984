from django.contrib import admin

from tenants.tests.probe.models import Note

admin.site.register(Note)
