"""Migrations are history: what one does must never change after it shipped. So they import no application code
(services, selectors, models: a later change there would silently change an old migration) — what a data migration
needs is frozen inside it, run with its historical models — and the figures' rollup migrations, frozen so, still
build exactly what `manage.py rebuild_figures_rollups` builds today."""

from __future__ import annotations

import ast
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from reviews.models import FiguresDailyRollup, FiguresRollup, PullRequestFigures
from reviews.services.figures import pull_request_figures_refresh
from tests.reviews.test_pull_request_figures import _varied_history

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = {"reviews", "telemetry", "config"}
# What a migration may import from the project: the field classes and validators its model states name (Django
# writes those imports itself), and the at-rest encryption 0012 applies, which must be the one the encrypting field
# reads back (the keys are the settings', as the field's).
ALLOWED = {"reviews.fields", "reviews.validators", "reviews.crypto"}
BEFORE_ROLLUPS = ("reviews", "0029_pull_request_lazy_fingerprints")
FIRST_ROLLUPS = ("reviews", "0030_figures_rollups")


def _project_imports(path: Path) -> set[str]:
    """The project modules a migration file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):  # relative: always within the project
            names = [f"<relative>.{node.module or ''}"]
        found |= {name for name in names if name.split(".")[0] in PROJECT_PACKAGES or name.startswith("<relative>")}
    return found


def test_no_migration_imports_application_code():
    migrations = sorted(REPO_ROOT.glob("*/migrations/[0-9]*.py"))
    assert len(migrations) > 40
    imported = {path.relative_to(REPO_ROOT).as_posix(): _project_imports(path) - ALLOWED for path in migrations}
    assert {path: modules for path, modules in imported.items() if modules} == {}


def _stored(model: Any, level: str) -> dict[tuple[int, dt.datetime | dt.date], dict[str, int]]:
    """Every rollup of `model` as stored, its counts exactly (names held at 0 included)."""
    return {(row.repository_id, getattr(row, level)): row.counts for row in model.objects.all()}


@pytest.mark.slow(40)
@pytest.mark.django_db(transaction=True)
def test_the_rollup_migrations_build_what_rebuild_figures_rollups_builds():
    """Stored rows from before the rollups (0029), migrated through 0030-0032: both levels of rollups hold exactly
    what the command computes from the same rows today. (If the rollups' definition changes, this fails: a new
    definition needs a migration of its own that builds them again, never an edit of these.)"""
    _varied_history()
    while pull_request_figures_refresh(bots=set()):
        pass
    rows = PullRequestFigures.objects.count()
    assert rows > 30
    call_command("rebuild_figures_rollups", stdout=io.StringIO())
    hours, days = _stored(FiguresRollup, "hour"), _stored(FiguresDailyRollup, "day")
    assert len(hours) > len(days) > 10

    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_ROLLUPS])
    assert "reviews_figuresrollup" not in connection.introspection.table_names()
    executor = MigrationExecutor(connection)
    executor.migrate([FIRST_ROLLUPS])  # the hours alone (with the histograms 0031 builds again)
    rollups_then = executor.loader.project_state([FIRST_ROLLUPS]).apps.get_model("reviews", "FiguresRollup")
    assert _stored(rollups_then, "hour") == hours
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert PullRequestFigures.objects.count() == rows
    assert _stored(FiguresRollup, "hour") == hours
    assert _stored(FiguresDailyRollup, "day") == days
