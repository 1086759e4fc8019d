from __future__ import annotations

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from reviews.models import Connection
        from reviews.sections import pull_request_sections, team_sections
        from reviews.sections_reviewers import pull_request_reviewers_section, team_knowledge_section
        from reviews.services.connections import connections_forget

        if pull_request_reviewers_section not in pull_request_sections:
            pull_request_sections.insert(0, pull_request_reviewers_section)
        if team_knowledge_section not in team_sections:
            team_sections.insert(0, team_knowledge_section)

        # Not work in a signal: only a cache that must not outlive the rows it copies.
        for signal in (post_save, post_delete):
            signal.connect(lambda **kwargs: connections_forget(), sender=Connection, weak=False)
