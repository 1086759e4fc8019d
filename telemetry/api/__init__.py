"""Production's side of the REST API (`/api/v1/`), one module per concern.

- urls: the routes, included by config/urls.py.
- production: deployments (and the check before one), incidents, suspect changes, DORA metrics, deploy risk.
- alerts: a team's alerts on its own telemetry and their acknowledgement.
- evidence: a team's change-management evidence for a period, streamed as CSV or JSON.
- notices: the caller's own notices (routes of its own).

Fields, parsers, renderers and errors are shared with the review side: reviews.api.
"""
