"""Admin pages, one blueprint per area; every view declares the least role it needs."""

from campaigns.web.admin import (
    api_keys,
    audience,
    automations,
    campaigns,
    dashboard,
    imports,
    layouts,
    letters,
    outbox,
    results,
    segments,
    service,
    surveys,
    users,
    webhooks,
)

BLUEPRINTS = [dashboard.bp, audience.bp, segments.bp, imports.bp, letters.bp, layouts.bp,
              campaigns.bp, automations.bp, results.bp, surveys.bp, service.bp, outbox.bp,
              users.bp, api_keys.bp, webhooks.bp]  # fmt: skip
