"""Admin for per-tenant settings models that have exactly one row (a `current()` classmethod)."""

from django.contrib import admin
from django.shortcuts import redirect


class SingletonModelAdmin(admin.ModelAdmin):
    """The list page opens the one row; it cannot be added twice or deleted."""

    def has_add_permission(self, request):
        return not self.model.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", self.model.current().pk)
