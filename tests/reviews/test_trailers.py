"""`Co-authored-by:` trailers as GitHub reads them, on real-looking commit messages. No database."""

from __future__ import annotations

from reviews.integrations.records import GitUserRecord
from reviews.integrations.trailers import co_authors


def test_trailers_after_a_blank_line_name_the_co_authors():
    message = (
        "Add retry logic to the payment client\n"
        "\n"
        "The provider times out under load; retry idempotent calls twice with jitter.\n"
        "\n"
        "Co-authored-by: Ann Lee <ann@example.com>\n"
    )
    assert co_authors(message) == (GitUserRecord(name="Ann Lee", email="ann@example.com"),)


def test_several_co_authors_in_order_without_duplicates():
    message = (
        "Mob on the billing export\n"
        "\n"
        "Co-authored-by: Ann Lee <ann@example.com>\n"
        "Co-authored-by: Bo Chen <12345+bochen@users.noreply.github.com>\n"
        "Co-authored-by: Ann Lee <ANN@example.com>\n"
        "Co-authored-by: Cy Diaz <cy@example.org>"
    )
    assert [c.email for c in co_authors(message)] == [
        "ann@example.com",
        "12345+bochen@users.noreply.github.com",
        "cy@example.org",
    ]


def test_odd_spacing_and_case_are_tolerated_and_emails_lower_cased():
    message = (
        "Fix rounding\r\n"
        "\r\n"
        "co-authored-by:Ann Lee<Ann@Example.COM>\r\n"
        "CO-AUTHORED-BY :   Bo Chen   <  bo@example.com  >   \r\n"
        "Co-Authored-By: Cy <cy@example.org>\r\n"
    )
    assert co_authors(message) == (
        GitUserRecord(name="Ann Lee", email="ann@example.com"),
        GitUserRecord(name="Bo Chen", email="bo@example.com"),
        GitUserRecord(name="Cy", email="cy@example.org"),
    )


def test_a_co_authored_by_line_in_the_body_is_prose_not_a_trailer():
    message = (
        "Document pairing credit\n"
        "\n"
        "To credit your pair, add a line like\n"
        "Co-authored-by: Name <name@example.com>\n"
        "at the end of the message.\n"
        "\n"
        "Signed-off-by: Ann Lee <ann@example.com>\n"
    )
    assert co_authors(message) == ()


def test_a_co_author_paragraph_that_is_not_the_last_is_not_the_trailer_block():
    message = (
        "Speed up the cache\n"
        "\n"
        "Co-authored-by: Bo Chen <bo@example.com>\n"
        "\n"
        "Measured 30% fewer misses on the staging replay."
    )
    assert co_authors(message) == ()


def test_signed_off_by_and_other_trailers_mixed_in_are_skipped():
    message = (
        "Harden login flow\n"
        "\n"
        "Lock the account after five failures.\n"
        "\n"
        "Signed-off-by: Ann Lee <ann@example.com>\n"
        "Co-authored-by: Bo Chen <bo@example.com>\n"
        "Reviewed-by: Cy Diaz <cy@example.org>\n"
        "Change-Id: I8f2c1d3e4b5a69788f2c1d3e4b5a69788f2c1d3e\n"
        "Co-authored-by: Dee Ellis <dee@example.org>\n"
    )
    assert [c.email for c in co_authors(message)] == ["bo@example.com", "dee@example.org"]


def test_a_github_squash_merge_message_names_the_co_authors():
    message = (
        "Add metrics endpoint (#412)\n"
        "\n"
        "* Add metrics endpoint\n"
        "\n"
        "* Address review comments\n"
        "\n"
        "---------\n"
        "\n"
        "Co-authored-by: Bo Chen <bo@example.com>\n"
        "Co-authored-by: Ann Lee <ann@example.com>"
    )
    assert [c.email for c in co_authors(message)] == ["bo@example.com", "ann@example.com"]


def test_a_subject_line_alone_has_no_trailers():
    assert co_authors("Co-authored-by: Bo Chen <bo@example.com>") == ()


def test_a_trailer_without_an_address_names_nobody():
    message = "Tidy imports\n\nCo-authored-by: Bo Chen\nCo-authored-by: <>\n"
    assert co_authors(message) == ()


def test_trailing_blank_lines_and_whitespace_only_lines_do_not_hide_the_block():
    message = "Fix flaky test\n\nRetry the socket.\n   \t\nCo-authored-by: Bo Chen <bo@example.com>\n\n\n   \n"
    assert [c.email for c in co_authors(message)] == ["bo@example.com"]


def test_a_trailer_block_may_hold_lines_that_are_not_trailers_as_git_allows():
    message = "Fix rounding\n\nFixes #12\nCo-authored-by: Bo Lee <bo@example.com>\nReviewed-by: Cy <cy@example.com>"
    assert [c.email for c in co_authors(message)] == ["bo@example.com"]


def test_a_folded_trailer_continues_on_the_next_line():
    message = "Fix rounding\n\nCo-authored-by: Bo Lee\n  <bo@example.com>"
    assert [c.email for c in co_authors(message)] == ["bo@example.com"]


def test_a_prose_paragraph_with_one_trailer_like_line_is_not_a_trailer_block():
    message = (
        "Fix\n\nWe talked about it at length.\nNobody wrote it down.\nThen we went home.\nAnd slept.\n"
        "Co-authored-by: Bo <bo@example.com>"
    )
    assert co_authors(message) == ()
