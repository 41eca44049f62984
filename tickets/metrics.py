"""Health gauges of the human side, computed by the leading scheduler (tickets/schedule.py); the
catalogue is docs/OBSERVABILITY.md."""

from tenants.metrics import HealthGauge, TenantCounter

TICKETS_WAITING = HealthGauge("wecomdesk_tickets_waiting", "Open tickets nobody has taken yet", ["tenant"])
TICKETS_SLA_BREACHED = HealthGauge("wecomdesk_tickets_sla_breached", "Open tickets past their SLA", ["tenant"])
AGENTS_ONLINE = HealthGauge("wecomdesk_agents_online", "Agents online (a live agent screen, not away)", ["tenant"])
INACTIVITY_ACTIONS = TenantCounter("wecomdesk_inactivity_actions_total",
                                   "Inactivity auto-close: warnings given and conversations closed",
                                   ["tenant", "action"])
