"""Customer profiles on the conversation screen (docs/AGENTS.md, "Labels and customer profiles"): who the
customer is as WeCom names them, what the tenant's people keep about them, and their earlier conversations."""
