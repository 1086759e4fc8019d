"""Shared body of `sync_github` and `sync_gitlab`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from reviews.integrations.vcs import VcsError, VcsRateLimited
from reviews.models import Connection
from reviews.services.sync import repository_for_sync, repository_sync


class SyncCommand(BaseCommand):
    provider = ""
    noun = "pull requests"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="owner/name (GitHub) or group/subgroup/project (GitLab)")
        parser.add_argument("--since", type=_date, help="Sync what changed since this date (YYYY-MM-DD or ISO time).")
        parser.add_argument("--full", action="store_true", help="Ignore the watermark and sync everything.")
        parser.add_argument("--connection", help="Name of the Connection to use (default: the instance's).")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = None
        if options["connection"]:
            connection = Connection.objects.filter(provider=self.provider, name=options["connection"]).first()
            if connection is None:
                raise CommandError(f"No {self.provider} connection named {options['connection']!r}.")
        try:
            repository = repository_for_sync(provider=self.provider, full_path=options["path"], connection=connection)
            with tqdm(desc=f"{repository.full_path}", unit=f" {self.noun}", disable=options["verbosity"] == 0) as bar:
                run = repository_sync(
                    repository=repository,
                    since=options["since"],
                    full=options["full"],
                    on_pull_request=lambda _: bar.update(1),
                )
        except VcsRateLimited as error:
            raise CommandError(f"Rate limited; run again in {error.retry_after:.0f}s (progress is kept).") from error
        except VcsError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Synced {run.pull_requests_synced} {self.noun} of {repository.full_path} "
                f"in {run.api_calls} API calls; watermark {repository.synced_until or 'unset'}."
            )
        )


def _date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--since: {value!r} is not a date (YYYY-MM-DD)") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
