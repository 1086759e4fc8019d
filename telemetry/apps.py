from __future__ import annotations

from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "telemetry"

    def ready(self) -> None:
        # reviews never imports telemetry: telemetry hands reviews its deployment handler instead.
        from reviews.services.webhooks import deployment_handlers
        from telemetry.services.deployments import deployments_from_webhook

        if deployments_from_webhook not in deployment_handlers:
            deployment_handlers.append(deployments_from_webhook)

        # ... and its answer to GitHub's deployment protection rules (the deploy check) ...
        from reviews.services.webhooks import protection_rule_handlers
        from telemetry.services.protection_rules import protection_rules_from_webhook

        if protection_rules_from_webhook not in protection_rule_handlers:
            protection_rule_handlers.append(protection_rules_from_webhook)

        # ... the processors that replay its stored incident webhooks ...
        from reviews.services.webhooks import delivery_processors
        from telemetry.integrations import opsgenie, pagerduty
        from telemetry.webhooks import incident_delivery_processor

        delivery_processors.setdefault("pagerduty", incident_delivery_processor(pagerduty.parse_webhook))
        delivery_processors.setdefault("opsgenie", incident_delivery_processor(opsgenie.parse_webhook))

        # ... its services as areas of the bus factor ...
        from reviews.selectors.knowledge import area_maps
        from telemetry.selectors.knowledge_areas import service_areas

        if service_areas not in area_maps:
            area_maps.append(service_areas)

        # ... and the sections it adds to the review side's pages.
        from reviews.sections import pull_request_sections, team_sections
        from telemetry.sections import (
            pull_request_production_section,
            team_alerts_section,
            team_deploy_risk_section,
            team_production_section,
        )

        for section in (team_alerts_section, team_production_section, team_deploy_risk_section):
            if section not in team_sections:
                team_sections.append(section)
        if pull_request_production_section not in pull_request_sections:
            pull_request_sections.append(pull_request_production_section)
