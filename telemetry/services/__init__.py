"""Writes for production's side, as plain functions (`<noun>_<verb>`)."""

from __future__ import annotations

from telemetry.services.core import deployment_upsert, incident_upsert, service_upsert

__all__ = ["deployment_upsert", "incident_upsert", "service_upsert"]
