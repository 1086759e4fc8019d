"""`/api/v1/`: the REST API of production's side."""

from __future__ import annotations

urlpatterns: list = []
