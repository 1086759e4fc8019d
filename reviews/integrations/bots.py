"""Tandem's one definition of a bot account (METRICS.md: bots are left out of every figure, as authors and as
reviewers, and their approvals never count). Every adapter and service asks `is_bot`.

An account is a bot when its provider says so (GitHub's `type: Bot`, GitLab's `bot: true`), or when its login is
one providers give to machines: `<app>[bot]` (GitHub Apps), GitLab's project and group access token users
(`project_123_bot_<hash>`, `group_45_bot_<hash>`, older `project_123_bot1`), service accounts (`service_account_...`),
`ghost` (both providers' stand-in for a deleted account: no person can be credited), or a name ending in `-bot` or
`_bot` or holding `_bot_` (renovate-bot, support-bot, release_bot). Names merely ending in "bot" (talbot) are
people.
"""

from __future__ import annotations

import re

_BOT_LOGIN = re.compile(
    r"""^(?:
        (?:project|group)_\d+_bot(?:_[0-9a-z]+|\d*)   # project and group access token users
      | service_account_.+                            # service accounts
      | ghost                                         # the placeholder for deleted accounts
      | .+[-_]bot                                     # renovate-bot, support-bot, alert-bot, release_bot
      | .+_bot_.+                                     # machine users named so
      | .+\[bot\]                                     # GitHub Apps (and imports, mirrors of them)
    )$""",
    re.IGNORECASE | re.VERBOSE,
)

_BOT_TYPES = frozenset({"bot"})


def is_bot(login: str, *, account_type: str = "", marked: bool = False) -> bool:
    """Whether an account is a bot: `marked` when the provider flags it (GitLab's `bot`), `account_type` as the
    provider names it (GitHub's `type`), and the login."""
    return marked or account_type.strip().lower() in _BOT_TYPES or bool(_BOT_LOGIN.match(login.strip()))
