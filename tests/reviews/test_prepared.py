"""Prepared reads and updates (`reviews.prepared`): compiled once, they return what the queryset they were built from
returns (an update writes what Django's writes), in one query each; a shape they cannot bind safely is refused at the
first call or declaration, not answered wrongly."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Upper
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from reviews.models import Commit, PolicyEvaluation, PullRequest, Repository
from reviews.prepared import PreparedInsert, PreparedRead, PreparedUpdate, PreparedUpdates, is_unique_violation
from tests.factories import CommitFactory, PersonFactory, PullRequestFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db


def fields_of(instance: object) -> dict[str, object]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}  # type: ignore[attr-defined]


WITH_REPOSITORY = PreparedRead(
    lambda pk: PullRequest.objects.select_related("repository__connection", "repository__team", "author").filter(pk=pk),
    pk=int,
)


def test_models_with_what_select_related_joined_equal_the_querysets():
    team = TeamFactory()
    with_team = PullRequestFactory(
        repository=RepositoryFactory(team=team), labels=["b", "a"], diff_ids={"abc": "x"}, author=PersonFactory()
    )
    without = PullRequestFactory(author=None)
    for pull_request in (with_team, without):
        expected = PullRequest.objects.select_related("repository__connection", "repository__team", "author").get(
            pk=pull_request.pk
        )
        (found,) = WITH_REPOSITORY.all(pk=pull_request.pk)
        assert fields_of(found) == fields_of(expected)  # JSON decoded, datetimes aware, as Django converts them
        assert fields_of(found.repository) == fields_of(expected.repository)
        assert fields_of(found.repository.connection) == fields_of(expected.repository.connection)
        assert (found.repository.team and found.repository.team.slug) == (
            expected.repository.team and expected.repository.team.slug
        )
        assert found.author == expected.author
        assert not found._state.adding and found._state.db == "default"


def test_each_call_binds_its_own_values_in_one_query(django_assert_num_queries):
    first, second = PullRequestFactory(), PullRequestFactory()
    WITH_REPOSITORY.all(pk=first.pk)  # compiled here
    with django_assert_num_queries(1):
        assert [found.pk for found in WITH_REPOSITORY.all(pk=second.pk)] == [second.pk]
    with django_assert_num_queries(1):
        assert WITH_REPOSITORY.all(pk=second.pk + first.pk + 10_000) == []
    found = WITH_REPOSITORY.first(pk=first.pk)
    with django_assert_num_queries(0):
        # What select_related joined is there: no query to read it.
        assert found is not None and found.repository.connection.pk == first.repository.connection_id


def test_values_tuples_and_flat_values_and_dicts():
    repository = RepositoryFactory()
    PullRequestFactory(repository=repository, number=7, title="seven")
    PullRequestFactory(repository=repository, number=3, title="three")
    tuples = PreparedRead(
        lambda repository: (
            PullRequest.objects.filter(repository_id=repository).order_by("number").values_list("number", "title")
        ),
        repository=int,
    )
    flat = PreparedRead(
        lambda repository, title: PullRequest.objects.filter(repository_id=repository, title=title).values_list(
            "number", flat=True
        ),
        repository=int,
        title=str,
    )
    dicts = PreparedRead(
        lambda repository: PullRequest.objects.filter(repository_id=repository).order_by("-number").values("number"),
        repository=int,
    )
    assert tuples.all(repository=repository.pk) == [(3, "three"), (7, "seven")]
    assert flat.all(repository=repository.pk, title="seven") == [7]
    assert flat.all(repository=repository.pk, title="eight") == []
    assert dicts.all(repository=repository.pk) == [{"number": 7}, {"number": 3}]


def test_lists_bind_each_item_once_and_long_or_empty_lists_take_the_ordinary_way(django_assert_num_queries):
    pulls = [PullRequestFactory() for _ in range(PreparedRead.LIST_MAX + 2)]
    ids = [pull.pk for pull in pulls]
    numbers = PreparedRead(
        lambda pks: PullRequest.objects.filter(pk__in=pks).order_by("pk").values_list("pk", flat=True), pks=list[int]
    )
    assert numbers.all(pks=[ids[1], ids[0], ids[1]]) == sorted(ids[:2])  # a repeated item counts once
    assert numbers.all(pks=ids[2:4]) == ids[2:4]  # the same length: the same statement, other values
    with django_assert_num_queries(1):
        assert numbers.all(pks=ids) == ids  # longer than LIST_MAX: Django builds it
    with django_assert_num_queries(0):
        assert numbers.all(pks=[]) == []  # nothing to look for: Django knows without asking
    shas = PreparedRead(
        lambda repository, shas: (
            Commit.objects.filter(repository_id=repository, sha__in=shas).order_by("sha").values_list("sha", flat=True)
        ),
        repository=int,
        shas=list[str],
    )
    repository = RepositoryFactory()
    CommitFactory(repository=repository, sha="a" * 40)
    CommitFactory(repository=repository, sha="b" * 40)
    assert shas.all(repository=repository.pk, shas=["b" * 40, "c" * 40, "a" * 40]) == ["a" * 40, "b" * 40]


def test_locking_reads_need_a_transaction_as_djangos_do():
    pull_request = PullRequestFactory()
    locked = PreparedRead(lambda pk: PullRequest.objects.select_for_update().filter(pk=pk), pk=int)
    with transaction.atomic():
        assert [found.pk for found in locked.all(pk=pull_request.pk)] == [pull_request.pk]


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused():
    pull_request = PullRequestFactory()
    locked = PreparedRead(lambda pk: PullRequest.objects.select_for_update().filter(pk=pk), pk=int)
    with transaction.atomic():
        locked.all(pk=pull_request.pk)  # compiled inside
    with pytest.raises(transaction.TransactionManagementError):
        locked.all(pk=pull_request.pk)


def test_shapes_that_cannot_be_bound_safely_are_refused_at_the_first_call():
    pull_request = PullRequestFactory()
    # The value is rewritten into the pattern "%…%": binding it as given would search for something else.
    contains = PreparedRead(lambda title: PullRequest.objects.filter(title__icontains=title), title=str)
    with pytest.raises(ImproperlyConfigured, match="'title' must be a parameter once"):
        contains.all(title="x")
    # The same value twice in the SQL would be bound in one place only.
    twice = PreparedRead(lambda pk: PullRequest.objects.filter(Q(pk=pk) | Q(repository_id=pk)), pk=int)
    with pytest.raises(ImproperlyConfigured, match="'pk' must be a parameter once"):
        twice.all(pk=pull_request.pk)
    prefetching = PreparedRead(lambda pk: PullRequest.objects.prefetch_related("commits").filter(pk=pk), pk=int)
    with pytest.raises(ImproperlyConfigured, match="prefetch"):
        prefetching.all(pk=pull_request.pk)
    related_manager = PreparedRead(lambda pk: pull_request.evaluations.filter(pk=pk), pk=int)
    with pytest.raises(ImproperlyConfigured, match="related manager"):
        related_manager.all(pk=1)
    with pytest.raises(ImproperlyConfigured, match="int, str and lists"):
        PreparedRead(lambda at: PolicyEvaluation.objects.filter(evaluated_at=at), at=object)


def test_models_carry_their_annotations_as_the_querysets_do():
    from django.db.models import Exists, OuterRef

    from reviews.models import ReviewerSuggestion

    suggested, not_suggested = PullRequestFactory(head_sha="a" * 40), PullRequestFactory(head_sha="b" * 40)
    ReviewerSuggestion.objects.create(pull_request=suggested, head_sha="a" * 40, computed_at=suggested.created_at)
    ReviewerSuggestion.objects.create(pull_request=not_suggested, head_sha="c" * 40, computed_at=suggested.created_at)
    build = lambda pk: (  # noqa: E731
        PullRequest.objects.select_related("repository")
        .annotate(
            head_suggested=Exists(
                ReviewerSuggestion.objects.filter(pull_request_id=OuterRef("pk"), head_sha=OuterRef("head_sha"))
            )
        )
        .filter(pk=pk)
    )
    read = PreparedRead(build, pk=int)
    for pull_request, expected in ((suggested, True), (not_suggested, False)):
        (found,) = read.all(pk=pull_request.pk)
        assert found.head_suggested is expected == build(pull_request.pk).get().head_suggested
        assert fields_of(found) == fields_of(build(pull_request.pk).get())
        assert fields_of(found.repository) == fields_of(pull_request.repository)


def test_the_statement_is_prepared_in_the_session_and_djangos_own_queries_are_not():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements of the session are PostgreSQL's")
    first, second = PullRequestFactory(), PullRequestFactory()

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall()]

    assert WITH_REPOSITORY.first(pk=first.pk) is not None  # prepared at its first use
    for _ in range(6):
        list(PullRequest.objects.filter(pk=second.pk))  # Django's: its values quoted into its text, never prepared
    assert WITH_REPOSITORY.first(pk=second.pk) is not None
    statements = prepared()
    assert len([sql for sql in statements if '"reviews_pullrequest"' in sql and "JOIN" in sql]) == 1
    assert not [sql for sql in statements if "JOIN" not in sql and '"reviews_pullrequest"' in sql]
    assert connection.connection.prepare_threshold is None  # Django's setting, as it was
    with CaptureQueriesContext(connection) as captured:
        WITH_REPOSITORY.first(pk=first.pk)  # prepared already: the query log still shows its SQL
    assert '"reviews_pullrequest"' in captured.captured_queries[0]["sql"]


def test_values_must_be_exactly_those_declared():
    read = PreparedRead(lambda pk: Repository.objects.filter(pk=pk), pk=int)
    with pytest.raises(TypeError, match="expected the values"):
        read.all(id=1)


def test_dicts_name_each_column_as_djangos_do_when_an_annotation_comes_first():
    # Django 5.2 selects values() in the order they are named: a key read from another order would label one
    # column's value with another's name.
    pull_request = PullRequestFactory(title="the title", number=41)
    build = lambda pk: PullRequest.objects.filter(pk=pk).values(shown=Upper("title"), n=F("number"))  # noqa: E731
    dicts = PreparedRead(build, pk=int)
    assert dicts.all(pk=pull_request.pk) == list(build(pull_request.pk)) == [{"shown": "THE TITLE", "n": 41}]
    annotated = lambda pk: (  # noqa: E731
        PullRequest.objects.filter(pk=pk).annotate(shown=Upper("title")).values("shown", "number", "title")
    )
    dicts = PreparedRead(annotated, pk=int)
    assert dicts.all(pk=pull_request.pk) == list(annotated(pull_request.pk))


def test_lists_named_in_another_order_than_declared_bind_each_to_its_own_places():
    repository = RepositoryFactory()
    CommitFactory(repository=repository, sha="a" * 40)
    CommitFactory(repository=repository, sha="b" * 40)
    shas = PreparedRead(
        lambda repositories, shas: (
            Commit.objects.filter(repository_id__in=repositories, sha__in=shas)
            .order_by("sha")
            .values_list("sha", flat=True)
        ),
        repositories=list[int],
        shas=list[str],
    )
    # Keyword arguments come in the caller's order: each list's length belongs to its name, not to a position.
    assert shas.all(shas=["a" * 40, "b" * 40, "c" * 40], repositories=[repository.pk]) == ["a" * 40, "b" * 40]
    assert shas.all(repositories=[repository.pk], shas=["b" * 40, "c" * 40, "d" * 40]) == ["b" * 40]


def test_a_value_the_statement_cannot_hold_as_given_is_answered_as_django_answers_it():
    pull_request = PullRequestFactory(title="None", author=None)
    by_title = PreparedRead(
        lambda title: PullRequest.objects.filter(title=title).values_list("pk", flat=True), title=str
    )
    by_titles = PreparedRead(
        lambda titles: PullRequest.objects.filter(title__in=titles).values_list("pk", flat=True), titles=list[str]
    )
    by_author = PreparedRead(
        lambda author: PullRequest.objects.filter(author_id=author).values_list("pk", flat=True), author=int
    )
    by_pk = PreparedRead(lambda pk: PullRequest.objects.filter(pk=pk).values_list("pk", flat=True), pk=int)
    assert by_title.all(title="None") == by_titles.all(titles=["None", "x"]) == [pull_request.pk]  # compiled
    assert by_pk.all(pk=pull_request.pk) == [pull_request.pk]
    # None is SQL's NULL to Django (`IS NULL`, or left out of IN), never the text "None".
    assert by_title.all(title=None) == []
    assert by_titles.all(titles=[None, "x"]) == []
    assert by_author.all(author=None) == [pull_request.pk]
    # Beyond a 64-bit integer no row can match: Django knows without asking, a database may refuse the number.
    assert by_pk.all(pk=2**63) == by_pk.all(pk=-(2**63) - 1) == []


def test_a_value_django_escapes_before_binding_is_refused_never_bound_as_given():
    PullRequestFactory(title="ABC")
    build = lambda title: PullRequest.objects.filter(title__iexact=title).values_list("title", flat=True)  # noqa: E731
    iexact = PreparedRead(build, title=str)
    if connection.vendor == "sqlite":
        # SQLite's iexact is LIKE: Django escapes the value's % and _, which would match any character as given.
        with pytest.raises(ImproperlyConfigured, match="'title' must be a parameter once"):
            iexact.all(title="a_c")
    else:
        assert iexact.all(title="a_c") == list(build("a_c")) == []
        assert iexact.all(title="abc") == list(build("abc")) == ["ABC"]


def test_a_value_build_derives_another_from_is_refused_never_frozen_at_the_stand_ins():
    repository = RepositoryFactory()
    for number in (1, 5, 30):
        PullRequestFactory(repository=repository, number=number, title=f"#{number}")
    # `number + 10` lands among the parameters as a constant of the first compile: later calls would keep it.
    window = PreparedRead(
        lambda number: (
            PullRequest.objects.filter(number__gte=number, number__lt=number + 10)
            .order_by("number")
            .values_list("number", flat=True)
        ),
        number=int,
    )
    with pytest.raises(ImproperlyConfigured, match="'number'"):
        window.all(number=1)
    # So would a text rewritten in `build`, where the stand-in happens to be unchanged by it.
    lowered = PreparedRead(
        lambda title: PullRequest.objects.filter(title=title.lower()).values_list("number", flat=True), title=str
    )
    with pytest.raises(ImproperlyConfigured, match="'title'"):
        lowered.all(title="#5")


# Prepared updates (`PreparedUpdate`): the writes every event makes, by primary key.

OWED = PreparedUpdate(PullRequest, "evaluation_owed_since", "title", keep=("evaluation_owed_since",))


def test_an_update_sets_the_row_as_djangos_update_does_and_counts_it(django_assert_num_queries):
    pull_request, other = PullRequestFactory(title="before"), PullRequestFactory(title="other")
    moment = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
    with django_assert_num_queries(1):
        assert OWED.run(pull_request.pk, evaluation_owed_since=moment, title="after") == 1
    pull_request.refresh_from_db()
    assert (pull_request.evaluation_owed_since, pull_request.title) == (moment, "after")
    assert PullRequest.objects.get(pk=other.pk).title == "other"  # its own row alone
    assert OWED.run(other.pk + pull_request.pk + 10_000, evaluation_owed_since=moment, title="x") == 0


def test_a_kept_column_keeps_a_stored_value_and_none_stores_null():
    earlier = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
    later = earlier + dt.timedelta(hours=1)
    pull_request = PullRequestFactory(evaluation_owed_since=earlier)
    OWED.run(pull_request.pk, evaluation_owed_since=later, title="t")
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since == earlier  # the earliest debt stays, as Coalesce(F(...), now) does
    settled = PreparedUpdate(PullRequest, "evaluation_owed_since")
    assert settled.run(pull_request.pk, evaluation_owed_since=None) == 1
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since is None
    OWED.run(pull_request.pk, evaluation_owed_since=later, title="t")
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since == later


def test_values_go_through_their_fields_as_djangos_do():
    pull_request = PullRequestFactory(labels=["a"])
    labels = PreparedUpdate(PullRequest, "labels", "draft")
    labels.run(pull_request.pk, labels=["x", {"y": 1}], draft=True)  # JSON adapted, as the update compiler does
    pull_request.refresh_from_db()
    assert (pull_request.labels, pull_request.draft) == (["x", {"y": 1}], True)


def test_a_key_no_row_can_hold_matches_nothing_without_a_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert OWED.run(None, evaluation_owed_since=None, title="x") == 0
        assert OWED.run(2**70, evaluation_owed_since=None, title="x") == 0
        assert OWED.run(-(2**70), evaluation_owed_since=None, title="x") == 0


def test_an_update_that_fails_in_a_transaction_marks_it_for_rollback_as_djangos_does():
    first, second = PullRequestFactory(), PullRequestFactory()
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            PreparedUpdate(PullRequest, "number", "repository").run(
                second.pk, number=first.number, repository=first.repository_id
            )
        marked = transaction.get_connection().needs_rollback
    assert marked  # the block is rolled back on its way out, not committed over the failed statement
    assert PullRequest.objects.filter(pk=second.pk, number=second.number).exists()


def test_shapes_an_update_cannot_take_are_refused_at_declaration():
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdate(PullRequest, "id")
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdate(PullRequest, "no_such_field")
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdate(PullRequest, "title", keep=("draft",))
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdate(PullRequest)
    with pytest.raises(ImproperlyConfigured, match="append-only"):
        PreparedUpdate(PolicyEvaluation, "reported_at", "outcome")  # a verdict's outcome never changes
    with pytest.raises(ImproperlyConfigured, match="append-only"):
        PreparedUpdate(PolicyEvaluation, "check_run_id")  # set once, with the record's own check
    with pytest.raises(TypeError, match="expected the values"):
        OWED.run(1, title="x")


def test_an_update_is_prepared_in_the_session_and_logged_with_its_sql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements of the session are PostgreSQL's")
    pull_request = PullRequestFactory()
    retitled = PreparedUpdate(PullRequest, "title")
    with CaptureQueriesContext(connection) as captured:
        retitled.run(pull_request.pk, title="one")
        retitled.run(pull_request.pk, title="two")
    assert all('UPDATE "reviews_pullrequest" SET "title"' in query["sql"] for query in captured.captured_queries)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert len([sql for sql in statements if sql.startswith('UPDATE "reviews_pullrequest" SET "title" = $1')]) == 1
    assert connection.connection.prepare_threshold is None


def test_updates_by_shape_keep_a_statement_for_each_set_of_fields_and_past_the_cap_ask_django(
    django_assert_num_queries,
):
    pull_request = PullRequestFactory(title="a", body="b")
    updates = PreparedUpdates(PullRequest, max_shapes=2)
    assert updates.run(pull_request.pk, title="t1") == 1
    assert updates.run(pull_request.pk, body="b1", title="t2") == 1
    assert updates.run(pull_request.pk, title="t3", body="b2") == 1  # the same set, named in another order
    assert sorted(updates._by_shape) == [("body", "title"), ("title",)]
    with django_assert_num_queries(1):
        assert updates.run(pull_request.pk, head_ref="h") == 1  # a third set: Django's update
    assert len(updates._by_shape) == 2
    pull_request.refresh_from_db()
    assert (pull_request.title, pull_request.body, pull_request.head_ref) == ("t3", "b2", "h")
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdates(PullRequest).run(pull_request.pk, no_such_field="x")


# Prepared inserts (`PreparedInsert`): a new row as Django's save() stores it.

NEW_EVALUATION = PreparedInsert(PolicyEvaluation)


def test_an_insert_stores_the_row_as_save_does_and_gives_the_instance_its_key(django_assert_num_queries):
    pull_request = PullRequestFactory()
    at = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
    values = {"pull_request": pull_request, "head_sha": "a" * 40, "outcome": "pending", "trace": {"rules": [1, "x"]}}
    saved = PolicyEvaluation(**values, evaluated_at=at)
    saved.save()
    inserted = PolicyEvaluation(**values, evaluated_at=at)
    with django_assert_num_queries(1):
        NEW_EVALUATION.save_new(inserted)
    assert inserted.pk is not None and inserted.pk != saved.pk
    assert not inserted._state.adding and inserted._state.db == "default"
    stored = {name: value for name, value in fields_of(PolicyEvaluation.objects.get(pk=inserted.pk)).items()}
    expected = {name: value for name, value in fields_of(PolicyEvaluation.objects.get(pk=saved.pk)).items()}
    assert {**stored, "id": None} == {**expected, "id": None}  # defaults included (description, report_error)
    assert fields_of(inserted) == stored
    with pytest.raises(TypeError):
        NEW_EVALUATION.save_new(inserted)  # stored already: never inserted twice
    with pytest.raises(TypeError):
        NEW_EVALUATION.save_new(PullRequestFactory.build())  # another model


def test_an_insert_someone_listens_to_is_saved_by_django():
    heard = []

    def receiver(sender, instance, created, **kwargs):  # type: ignore[no-untyped-def]
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=PolicyEvaluation)
    try:
        evaluation = PolicyEvaluation(pull_request=PullRequestFactory(), head_sha="b" * 40, outcome="approved")
        NEW_EVALUATION.save_new(evaluation)
    finally:
        post_save.disconnect(receiver, sender=PolicyEvaluation)
    assert heard == [(evaluation.pk, True)]


NEW_PULL_REQUEST = PreparedInsert(PullRequest)


@pytest.mark.parametrize("listened", [False, True], ids=["prepared", "django's fallback"])
def test_an_insert_unless_conflict_skips_only_a_row_stored_with_its_unique_values(listened):
    # A listener sends the insert through Django's save() in a savepoint: the way a database without returning
    # inserts (or SQLite's fallback) takes. Both ways: a unique violation is "stored meanwhile", nothing else is.
    def receiver(sender, instance, created, **kwargs):  # type: ignore[no-untyped-def]
        pass

    stored = PullRequestFactory()
    if listened:
        post_save.connect(receiver, sender=PullRequest)
    try:
        at = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
        same = PullRequest(repository=stored.repository, number=stored.number, title="t", created_at=at, updated_at=at)
        assert NEW_PULL_REQUEST.save_new_unless_conflict(same) is False
        assert same.pk is None and same._state.adding
        untitled = PullRequest(repository=stored.repository, number=stored.number + 1, created_at=at, updated_at=at)
        untitled.title = None  # type: ignore[assignment]  # NOT NULL: the row's own fault, never "stored meanwhile"
        with transaction.atomic():
            with pytest.raises(IntegrityError) as raised:
                NEW_PULL_REQUEST.save_new_unless_conflict(untitled)
            assert not is_unique_violation(raised.value)
            transaction.set_rollback(True)
    finally:
        post_save.disconnect(receiver, sender=PullRequest)
    assert PullRequest.objects.count() == 1


def _sqlite_integrity_error(statement: str) -> IntegrityError:
    """Django's IntegrityError for SQLite's, as its backend raises it (the driver's error as the cause)."""
    database = sqlite3.connect(":memory:")
    try:
        database.execute("CREATE TABLE t (id integer PRIMARY KEY, k text NOT NULL UNIQUE, n integer CHECK (n > 0))")
        database.execute("INSERT INTO t (id, k, n) VALUES (1, 'a', 1)")
        try:
            database.execute(statement)
        except sqlite3.IntegrityError as error:
            try:
                raise IntegrityError(*error.args) from error
            except IntegrityError as wrapped:
                return wrapped
    finally:
        database.close()
    raise AssertionError(f"no integrity error: {statement}")


@pytest.mark.parametrize(
    ("statement", "conflict"),
    [
        ("INSERT INTO t (id, k, n) VALUES (2, 'a', 1)", True),  # a unique value stored
        ("INSERT INTO t (id, k, n) VALUES (1, 'b', 1)", True),  # the key stored
        ("INSERT INTO t (id, k, n) VALUES (2, NULL, 1)", False),
        ("INSERT INTO t (id, k, n) VALUES (2, 'b', 0)", False),
    ],
    ids=["unique", "primary key", "not null", "check"],
)
def test_sqlites_unique_violations_are_told_from_its_other_integrity_errors(statement, conflict):
    assert is_unique_violation(_sqlite_integrity_error(statement)) is conflict


def test_an_insert_that_fails_in_a_transaction_marks_it_for_rollback():
    evaluation = PolicyEvaluation(pull_request=PullRequestFactory(), head_sha="c" * 40, outcome=None)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            NEW_EVALUATION.save_new(evaluation)  # an outcome is NOT NULL
        marked = transaction.get_connection().needs_rollback
    assert marked


def test_models_an_insert_cannot_write_are_refused_at_declaration():
    from reviews.models import PullRequestFigures

    with pytest.raises(ImproperlyConfigured, match="automatic key"):
        PreparedInsert(PullRequestFigures)  # its key is its pull request's, not the database's to choose


def test_a_save_or_an_update_of_a_models_own_is_never_skipped(monkeypatch):
    from reviews.models import Review

    class GuardedQuerySet(QuerySet):  # type: ignore[type-arg]
        def update(self, **kwargs):  # type: ignore[no-untyped-def]
            raise AssertionError("a guard")

    monkeypatch.setattr(Review.objects, "get_queryset", lambda: GuardedQuerySet(Review))
    with pytest.raises(ImproperlyConfigured, match="update of its own"):
        PreparedUpdate(Review, "body")
    monkeypatch.setattr(Review, "save", lambda self, *args, **kwargs: None)
    with pytest.raises(ImproperlyConfigured, match="save of its own"):
        PreparedInsert(Review)
    PreparedUpdate(PolicyEvaluation, "reported_at")  # the append-only queryset's update: its rule is kept here


@pytest.mark.django_db(transaction=True)
def test_a_statement_the_session_lost_is_prepared_again_not_refused_for_the_connections_life():
    # A pooler's reset (DISCARD ALL), a DEALLOCATE, a server_reset_query: the session forgets its statements while
    # psycopg still knows them by name. The call that finds out fails; the next ones must prepare anew, not fail
    # for as long as the worker keeps the connection.
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements of the session are PostgreSQL's")
    pull_request = PullRequestFactory(title="before")
    retitled = PreparedUpdate(PullRequest, "title")
    retitled.run(pull_request.pk, title="one")
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")
    with contextlib.suppress(DatabaseError):
        retitled.run(pull_request.pk, title="lost")
    assert retitled.run(pull_request.pk, title="two") == 1
    assert WITH_REPOSITORY.first(pk=pull_request.pk).title == "two"  # type: ignore[union-attr]
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")
    with contextlib.suppress(DatabaseError):
        WITH_REPOSITORY.first(pk=pull_request.pk)
    assert WITH_REPOSITORY.first(pk=pull_request.pk).title == "two"  # type: ignore[union-attr]


@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_columns_changed_type_is_prepared_again_not_refused_for_the_connections_life():
    # A migration altered a column's type while a worker kept its connection: PostgreSQL refuses the statement
    # prepared before ("cached plan must not change result type") for as long as the session keeps it.
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements of the session are PostgreSQL's")
    titles = PreparedRead(lambda pk: PullRequest.objects.filter(pk=pk).values_list("title", flat=True), pk=int)
    pull_request = PullRequestFactory(title="kept")
    assert titles.all(pk=pull_request.pk) == ["kept"]
    max_length = PullRequest._meta.get_field("title").max_length
    with connection.cursor() as cursor:
        cursor.execute('ALTER TABLE "reviews_pullrequest" ALTER COLUMN "title" TYPE text')
    try:
        with contextlib.suppress(DatabaseError):
            titles.all(pk=pull_request.pk)
        assert titles.all(pk=pull_request.pk) == ["kept"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "reviews_pullrequest" ALTER COLUMN "title" TYPE varchar({max_length:d})')


def test_an_insert_refuses_an_unsaved_related_row_and_takes_its_key_once_saved_as_save_does():
    from reviews.models import Policy

    pull_request = PullRequestFactory()
    unsaved = Policy(repository=pull_request.repository, document="approvals: 1")
    evaluation = PolicyEvaluation(pull_request=pull_request, policy=unsaved, head_sha="d" * 40, outcome="pending")
    with pytest.raises(ValueError, match="unsaved related object 'policy'"):
        NEW_EVALUATION.save_new(evaluation)  # never a verdict stored under no policy (policy_id NULL) in silence
    assert not PolicyEvaluation.objects.filter(pull_request=pull_request).exists()
    unsaved.save()  # saved after it was assigned: save() takes its key then, and so must the prepared insert
    NEW_EVALUATION.save_new(evaluation)
    assert PolicyEvaluation.objects.get(pk=evaluation.pk).policy_id == unsaved.pk
