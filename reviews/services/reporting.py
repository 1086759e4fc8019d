"""Report Tandem's verdict back to the VCS as the commit status `tandem/review-policy`.

One function for both providers: the VcsClient behind `vcs_client_for` speaks GitHub or GitLab.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from reviews.integrations.records import StatusState
from reviews.models import PullRequest
from reviews.services.sync import vcs_client_for


def pull_request_page_url(pull_request: PullRequest) -> str:
    return f"{settings.PUBLIC_URL}{reverse('pull-request', args=[pull_request.pk])}"


def commit_status_report(*, pull_request: PullRequest, sha: str, state: StatusState, description: str) -> None:
    """Post the status on `sha`, linking to the pull request's page in Tandem. Raises VcsError on failure."""
    repository = pull_request.repository
    client = vcs_client_for(repository.connection)
    try:
        client.post_status(
            repository.full_path,
            sha,
            state=state,
            description=description,
            target_url=pull_request_page_url(pull_request),
            ref=pull_request.head_ref,
        )
    finally:
        client.close()
