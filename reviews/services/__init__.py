"""Writes for the review side, as plain functions with keyword-only arguments (`<noun>_<verb>`).

Webhooks, sync and the demo seeder all write through these, so every path upserts the same way.
"""
