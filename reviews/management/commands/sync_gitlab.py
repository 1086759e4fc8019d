from __future__ import annotations

from reviews.management.sync_command import SyncCommand


class Command(SyncCommand):
    help = "Sync a GitLab project's merge requests, approvals, notes, commits and changes (incremental by default)."
    provider = "gitlab"
    noun = "merge requests"
