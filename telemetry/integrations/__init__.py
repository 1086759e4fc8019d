"""Incident tools and chat: their payloads turned into plain records, and the calls made to them. No models here."""
