"""`manage.py demo`: make sure the demo tenant and the logins of `make run` exist (idempotent).

Here, in the top app, because the demo sets up every layer: the tenant, its WeCom apps, knowledge
and AI provider, and an agent login.
"""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from conversations.services.demo import SANDBOX_SEED_FILE, ensure_demo_answering, ensure_demo_wecom_apps
from tenants.log_context import LoggedCommand
from tenants.models import Tenant
from tenants.services import create_staff_user, create_tenant, ensure_public_tenant, tenant_urls
from tickets.demo import ensure_demo_agent

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.local"
DEMO_PASSWORD = "demo-admin-2026"
PLATFORM_EMAIL = "platform@demo.local"


class Command(LoggedCommand):
    help = "Create the demo tenant, its admin user and a platform admin if missing; print the logins."

    def handle(self, *args, **options):
        ensure_public_tenant()
        with schema_context("public"):
            if not get_user_model().objects.filter(username=PLATFORM_EMAIL).exists():
                create_staff_user(email=PLATFORM_EMAIL, password=DEMO_PASSWORD, superuser=True)
        tenant = Tenant.objects.filter(schema_name=DEMO_SLUG).first()
        if tenant is None:
            tenant = create_tenant(slug=DEMO_SLUG, name="Demo 演示公司", domain="demo.localhost",
                                   admin_email=DEMO_EMAIL, admin_password=DEMO_PASSWORD)
        with schema_context(DEMO_SLUG):
            seed = ensure_demo_wecom_apps()
            ensure_demo_answering(model_base_url=settings.WECOM_API_BASE.rstrip("/") + "/v1")
            ensure_demo_agent(email=DEMO_EMAIL)
        SANDBOX_SEED_FILE.parent.mkdir(exist_ok=True)
        SANDBOX_SEED_FILE.write_text(json.dumps(seed, ensure_ascii=False, indent=2))
        urls = tenant_urls(tenant)
        self.stdout.write(self.style.SUCCESS("Demo ready. Log in with:"))
        self.stdout.write(f"  Tenant admin:   {urls.admin}  (or {urls.host_admin})")
        self.stdout.write(f"                  user {DEMO_EMAIL}  password {DEMO_PASSWORD}")
        self.stdout.write(f"  Platform admin: {settings.PUBLIC_BASE_URL}/admin/")
        self.stdout.write(f"                  user {PLATFORM_EMAIL}  password {DEMO_PASSWORD}")
        self.stdout.write(f"  WeCom sandbox:  {settings.WECOM_API_BASE}/sandbox/health  (seed: {SANDBOX_SEED_FILE})")
        self.stdout.write(f"  Agent screens:  {urls.base}agent/  (same login; a supervisor)")
        self.stdout.write("  Chat as a customer: .venv/bin/python -m wecom_sandbox.chat   (--kf for 微信客服)")
