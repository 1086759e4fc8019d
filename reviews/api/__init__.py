"""The review side's REST API (`/api/v1/`), one module per concern.

- urls: the routes, included by config/urls.py.
- read: teams, people, repositories, pull requests (with their verdict), reviews, a team's review health.
- policies: review policies (read, edit, versions, restore, simulate) and overrides of a verdict (withdraw, follow-up).
- reviewers: reviewer suggestions, knowledge per area, who is away.
- audit: audit events and a team's compliance list.
- pairing: pairing sessions, each person's active session, a team's pairing insight (routes of its own).
- fields, parsers, renderers, errors: what the API of both apps shares — bounded fields, filters and the paginator,
  the JSON parser and renderer, the JSON exception handler (named in settings.REST_FRAMEWORK).
"""
