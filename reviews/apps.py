from __future__ import annotations

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reviews"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from reviews.models import Connection
        from reviews.services.connections import connections_forget

        # Not work in a signal: only a cache that must not outlive the rows it copies.
        for signal in (post_save, post_delete):
            signal.connect(lambda **kwargs: connections_forget(), sender=Connection, weak=False)
