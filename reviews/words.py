"""Words a person reads: counts with the right plural. No Django here: the policy engine uses it too."""

from __future__ import annotations

# Nouns whose plural is not the singular plus "s".
IRREGULAR = {"person": "people", "reply": "replies", "policy": "policies", "match": "matches"}


def plural(noun: str, count: int | float) -> str:
    """The noun as it goes with the count: "file" for 1, "files" otherwise (0 files, 2 files, 1.5 hours)."""
    if count == 1:
        return noun
    return IRREGULAR.get(noun, noun + "s")


def counted(count: int | float, noun: str) -> str:
    """ "1 file", "2 incidents", "0 approvals"."""
    return f"{count} {plural(noun, count)}"


def label_and_rest(label: str, text: str) -> tuple[str, str]:
    """A verdict's label once: ("Approved", ": 1 of 1 approval") for a text that already starts with it, as the
    engine's summaries do, never "Approved: Approved: …"; ("Pending", ": needs 1 more approval") otherwise."""
    if text[: len(label)].lower() == label.lower():
        return text[: len(label)], text[len(label) :]
    return label, f": {text}" if text else ""
