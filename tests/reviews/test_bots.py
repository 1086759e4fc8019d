"""One definition of a bot: GitHub, GitLab and git authors are judged by the same rule."""

from __future__ import annotations

import pytest

from reviews.integrations.bots import is_bot
from reviews.integrations.records import GitUserRecord, UserRecord
from reviews.services.people import identity_from_git_user, person_from_account
from tests.factories import ConnectionFactory

BOTS = ["dependabot[bot]", "renovate-bot", "release_bot", "project_42_bot_0d8f1c", "service_account_ci", "ghost"]
PEOPLE = ["talbot", "robotnik", "bot.tom", "ghostwriter", "Codertocat"]


@pytest.mark.parametrize("login", BOTS)
def test_machine_logins_are_bots_on_every_provider(db, login):
    for provider, base_url in (("github", "https://api.github.com"), ("gitlab", "https://gitlab.com/api/v4")):
        connection = ConnectionFactory(provider=provider, base_url=base_url)
        person = person_from_account(connection=connection, account=UserRecord(provider=provider, login=login))
        assert person is not None and person.is_bot, (provider, login)
    git_user = GitUserRecord(name=login, email=f"{login.replace('[', '').replace(']', '')}@machines.example")
    identity = identity_from_git_user(git_user=git_user, create_person=True)
    assert identity.person is not None and identity.person.is_bot


@pytest.mark.parametrize("login", PEOPLE)
def test_people_with_bot_like_names_are_people(login):
    assert not is_bot(login)
    assert not is_bot(login, account_type="User")


def test_what_the_provider_says_is_enough():
    assert is_bot("ci", account_type="Bot")
    assert is_bot("ci", marked=True)
