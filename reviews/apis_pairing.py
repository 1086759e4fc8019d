"""Pairing sessions API (placeholder until the pairing endpoints land)."""

from __future__ import annotations

urlpatterns: list = []
