from __future__ import annotations

from reviews.management.sync_command import SyncCommand


class Command(SyncCommand):
    help = "Sync a GitHub repository's pull requests, reviews, commits and files (incremental by default)."
    provider = "github"
    noun = "pull requests"
