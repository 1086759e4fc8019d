"""Repair: work whose task never ran (deployments never linked, incidents never correlated), for the sweep."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from telemetry.models import Deployment, Incident


def deployments_awaiting_link(*, older_than: dt.timedelta, limit: int) -> list[int]:
    """Successful deployments never linked (and not failing to be), reported more than `older_than` ago."""
    return list(
        Deployment.objects.filter(
            status=Deployment.Status.SUCCESS,
            finished_at__isnull=False,
            changes_linked_at__isnull=True,
            link_error="",
            created_at__lt=timezone.now() - older_than,
        )
        .order_by("finished_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def incidents_awaiting_correlation(*, older_than: dt.timedelta, limit: int) -> list[int]:
    return list(
        Incident.objects.filter(correlated_at__isnull=True, created_at__lt=timezone.now() - older_than)
        .order_by("started_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
