"""What a team page, its drill-down lists and the metrics API are about: a period and filters, parsed once.

One parser for pages and API alike (`parse_period`, `parse_scope`): an out-of-range or invalid value is a
`ScopeInvalid` naming its field (a message on the page, a 400 in the API), never a silent fallback.

Periods are in the server's time zone (settings.TIME_ZONE; teams have none of their own). `since` and `until` are
dates (both days included) or date-times (`until` excluded); `days=N` is the last N days, today included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from django.db.models import F, Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from reviews.api.fields import MomentField, id_from_text
from reviews.models import Membership, PullRequest, Repository, Team
from reviews.selectors.health import SIZE_BUCKETS

MAX_PERIOD_DAYS = 730  # two years
QUICK_PERIODS = (7, 14, 30, 90)
MAX_FILTER_VALUES = 20
MAX_LABEL_LENGTH = 100
SIZE_NAMES = tuple(name for name, _ in SIZE_BUCKETS)


class ScopeInvalid(Exception):
    """A period or filter refused. `field` names the query parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class QueryParams(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def getlist(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Period:
    since: dt.datetime
    until: dt.datetime
    days: int | None = None  # when asked for as `days=N`

    @property
    def length(self) -> dt.timedelta:
        return self.until - self.since

    @property
    def first_day(self) -> dt.date:
        return timezone.localtime(self.since).date()

    @property
    def last_day(self) -> dt.date:
        """The last day the period covers (its end is excluded)."""
        return timezone.localtime(self.until - dt.timedelta(microseconds=1)).date()

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        return Period(self.since - self.length, self.since, self.days)

    def query(self) -> dict[str, str]:
        if self.days is not None:
            return {"days": str(self.days)}
        return {"since": _day_or_moment(self.since, end=False), "until": _day_or_moment(self.until, end=True)}


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def _day_or_moment(moment: dt.datetime, *, end: bool) -> str:
    local = timezone.localtime(moment)
    if local.time() == dt.time.min:
        return (local.date() - dt.timedelta(days=1) if end else local.date()).isoformat()
    return local.isoformat()


def _moment(params: QueryParams, field: str, *, end: bool) -> dt.datetime | None:
    text = params.get(field)
    if text is None or text == "":
        return None
    try:
        moment: dt.datetime = MomentField().to_internal_value(text)
    except ValidationError as error:
        raise ScopeInvalid(field, " ".join(str(m) for m in error.detail)) from None
    if end and isinstance(text, str) and len(text.strip()) == 10:  # a date: the end of that day
        return _midnight(moment.date() + dt.timedelta(days=1))
    return moment


def _days(params: QueryParams) -> int | None:
    text = params.get("days")
    if text is None or text == "":
        return None
    digits = str(text).strip()
    # ASCII digits only, as the id filters take them: int() would also read "1_0" and full-width digits.
    if not (digits.isascii() and digits.isdigit()):
        raise ScopeInvalid("days", f"days must be a whole number of days, not {text!r}.")
    days = int(digits)
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise ScopeInvalid("days", f"days must be between 1 and {MAX_PERIOD_DAYS} (two years); {days} is not.")
    return days


def parse_period(params: QueryParams, *, default_days: int = 30, now: dt.datetime | None = None) -> Period:
    """`days=N`, or `since`/`until` (either may be left out), or neither: the last `default_days` days."""
    now = now or timezone.now()
    end_of_today = _midnight(timezone.localtime(now).date() + dt.timedelta(days=1))
    days = _days(params)
    since, until = _moment(params, "since", end=False), _moment(params, "until", end=True)
    if days is not None and (since is not None or until is not None):
        raise ScopeInvalid("days", "Give either days or since/until, not both.")
    if days is not None or (since is None and until is None):
        length = days or default_days
        return Period(end_of_today - dt.timedelta(days=length), end_of_today, length if days else None)
    if until is not None and until > end_of_today:
        raise ScopeInvalid("until", "until is in the future.")
    if since is not None and since >= end_of_today:
        raise ScopeInvalid("since", "since is in the future.")
    until = until or end_of_today
    since = since or until - dt.timedelta(days=default_days)
    if since >= until:
        raise ScopeInvalid("since", "until is before since.")
    if until - since > dt.timedelta(days=MAX_PERIOD_DAYS):
        raise ScopeInvalid("since", f"The period is at most {MAX_PERIOD_DAYS} days (two years).")
    return Period(since, until)


@dataclass(frozen=True)
class Scope:
    """A team's pull requests over a period, narrowed by filters (each: any of its values; all filters at once)."""

    team: Team
    period: Period
    repositories: tuple[int, ...] = ()
    authors: tuple[int, ...] = ()
    author_team: Team | None = None
    labels: tuple[str, ...] = ()
    size_bucket: str = ""

    @property
    def since(self) -> dt.datetime:
        return self.period.since

    @property
    def until(self) -> dt.datetime:
        return self.period.until

    @property
    def filtered(self) -> bool:
        return bool(self.repositories or self.authors or self.author_team or self.labels or self.size_bucket)

    def previous(self) -> Scope:
        return dataclasses.replace(self, period=self.period.previous())

    def with_period(self, since: dt.date, last_day: dt.date) -> Scope:
        """The same filters over [since, last_day], both days included."""
        return dataclasses.replace(self, period=Period(_midnight(since), _midnight(last_day + dt.timedelta(days=1))))

    def pull_requests(self) -> QuerySet[PullRequest]:
        """The team's pull requests that pass the filters (any state, any time: the period is the caller's)."""
        return filter_pull_requests(PullRequest.objects.filter(repository__team=self.team), self)

    def filter_query(self) -> dict[str, list[str]]:
        query: dict[str, list[str]] = {}
        if self.repositories:
            query["repository"] = [str(pk) for pk in self.repositories]
        if self.authors:
            query["author"] = [str(pk) for pk in self.authors]
        if self.author_team:
            query["author_team"] = [self.author_team.slug]
        if self.labels:
            query["label"] = list(self.labels)
        if self.size_bucket:
            query["size"] = [self.size_bucket]
        return query

    def query(self, **extra: str) -> str:
        """The period and filters as a URL query string, for links that keep them."""
        pairs: list[tuple[str, str]] = list(self.period.query().items())
        pairs += [(key, value) for key, values in self.filter_query().items() for value in values]
        pairs += [(key, value) for key, value in extra.items() if value != ""]
        return urlencode(pairs)


def filter_pull_requests(pull_requests: QuerySet[PullRequest], scope: Scope) -> QuerySet[PullRequest]:
    if scope.repositories:
        pull_requests = pull_requests.filter(repository_id__in=scope.repositories)
    if scope.authors:
        pull_requests = pull_requests.filter(author_id__in=scope.authors)
    if scope.author_team is not None:
        members = Membership.objects.filter(team=scope.author_team).values("person_id")
        pull_requests = pull_requests.filter(author_id__in=members)
    if scope.labels:
        pull_requests = pull_requests.filter(labels__has_any_element=list(scope.labels))
    if scope.size_bucket:
        pull_requests = pull_requests.filter(size_condition(scope.size_bucket))
    return pull_requests


def size_condition(bucket: str) -> Q:
    """Pull requests whose changed lines (additions + deletions) fall in the bucket, as `health.size_bucket`."""
    lower = 0
    for name, limit in SIZE_BUCKETS:
        if name == bucket:
            changed = F("additions") + F("deletions")
            condition = Q(additions__isnull=False, deletions__isnull=False)
            condition &= Q(_changed__gt=lower) if lower else Q()
            condition &= Q(_changed__lte=limit) if limit != float("inf") else Q()
            return Q(pk__in=PullRequest.objects.alias(_changed=changed).filter(condition).values("pk"))
        lower = int(limit)
    raise ValueError(bucket)


def _ids(params: QueryParams, field: str) -> list[int]:
    values = [value for value in params.getlist(field) if value.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise ScopeInvalid(field, f"At most {MAX_FILTER_VALUES} values of {field}.")
    ids = []
    for value in values:
        pk = id_from_text(value)
        if pk is None:
            raise ScopeInvalid(field, f"{value!r} is not an id.")
        ids.append(pk)
    return sorted(set(ids))


def parse_scope(
    params: QueryParams,
    *,
    team: Team,
    teams: QuerySet[Team],
    default_days: int = 30,
    now: dt.datetime | None = None,
) -> Scope:
    """The period and filters of a team page or team API call. `teams`: the teams the caller may see (an author's
    team must be one of them). A repository that is not the team's, or a person who neither belongs to the team
    nor authored any of its pull requests, is refused: a filter never silently matches nothing."""
    _refuse_nul(params)
    period = parse_period(params, default_days=default_days, now=now)
    repositories = _ids(params, "repository")
    if repositories:
        known = set(Repository.objects.filter(team=team, pk__in=repositories).values_list("pk", flat=True))
        if unknown := [pk for pk in repositories if pk not in known]:
            raise ScopeInvalid("repository", f"No repository of {team.name} has id {unknown[0]}.")
    authors = _ids(params, "author")
    if authors:
        authored = PullRequest.objects.filter(repository__team=team, author_id__in=authors).values("author_id")
        members = Membership.objects.filter(team=team, person_id__in=authors).values("person_id")
        known = set(authored.values_list("author_id", flat=True)) | set(members.values_list("person_id", flat=True))
        if unknown := [pk for pk in authors if pk not in known]:
            raise ScopeInvalid(
                "author", f"Person {unknown[0]} neither belongs to {team.name} nor authored its changes."
            )
    author_team = None
    if slug := (params.get("author_team") or "").strip():
        author_team = teams.filter(slug=slug).first()
        if author_team is None:
            raise ScopeInvalid("author_team", f"No team {slug!r} that you can see.")
    labels = _labels(params.getlist("label"))
    size = (params.get("size") or "").strip()
    if size and size not in SIZE_NAMES:
        raise ScopeInvalid("size", f"size is one of {', '.join(SIZE_NAMES)}.")
    return Scope(team, period, tuple(repositories), tuple(authors), author_team, labels, size)


def _refuse_nul(params: QueryParams) -> None:
    """A NUL character in any parameter (a label, a team, a drill-down's reason) is refused here: PostgreSQL cannot
    compare text with one, so it would be a 500 wherever the value reaches a query."""
    lists = getattr(params, "lists", None)
    for key, values in lists() if callable(lists) else ():
        if "\x00" in key or any("\x00" in str(value) for value in values):
            name = key.replace("\x00", "")
            raise ScopeInvalid(name, f"{name} may not contain a NUL character.")


def _labels(values: Sequence[str]) -> tuple[str, ...]:
    labels = [value.strip() for value in values if value.strip()]
    if len(labels) > MAX_FILTER_VALUES:
        raise ScopeInvalid("label", f"At most {MAX_FILTER_VALUES} labels.")
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        raise ScopeInvalid("label", f"A label is at most {MAX_LABEL_LENGTH} characters.")
    return tuple(dict.fromkeys(labels))


def as_validation_error(error: ScopeInvalid) -> ValidationError:
    """The API's 400: {"error": ..., "fields": {field: [message]}}."""
    return ValidationError({error.field: [error.message]})
