"""The tenant's audit log: who changed what through the API or the admin's sensitive actions.

See docs/API.md ("Audit log"). Modules: `models` (AuditLogEntry), `admin` (the read-only page); writes go
through conversations.services.audit, the API's central hook is conversations.api.audit.
"""
