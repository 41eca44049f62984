"""The platform admin (public schema): tenants and domains. Tenant admins never see these."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from tenants.models import Domain, Tenant
from tenants.services import TenantError, set_tenant_active, tenant_urls, validate_slug


class PlatformAdminSite(admin.AdminSite):
    site_header = "WeCom Desk platform"
    site_title = "WeCom Desk platform"
    index_title = "Tenants"


platform_admin = PlatformAdminSite(name="platform_admin")


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 1


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["schema_name", "name", "is_active"]
        labels = {"schema_name": "slug"}

    def clean_schema_name(self):
        slug = self.cleaned_data["schema_name"]
        try:
            validate_slug(slug)
        except TenantError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return slug


@admin.register(Tenant, site=platform_admin)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["schema_name", "name", "is_active", "created_at", "admin_url"]
    list_filter = ["is_active"]
    search_fields = ["schema_name", "name", "domains__domain"]
    inlines = [DomainInline]
    actions = ["suspend", "activate"]

    def get_readonly_fields(self, request, obj=None):
        # The slug is the schema name: it cannot change once the schema exists.
        return ["schema_name", "created_at"] if obj else ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(schema_name="public")

    @admin.display(description="tenant admin")
    def admin_url(self, obj):
        return tenant_urls(obj).admin

    @admin.action(description="Suspend selected tenants")
    def suspend(self, request, queryset):
        for tenant in queryset:
            set_tenant_active(slug=tenant.schema_name, active=False)
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).")

    @admin.action(description="Reactivate selected tenants")
    def activate(self, request, queryset):
        for tenant in queryset:
            set_tenant_active(slug=tenant.schema_name, active=True)
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).")


platform_admin.register(User, UserAdmin)
platform_admin.register(Group, GroupAdmin)
