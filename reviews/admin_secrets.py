"""The admin's view of secrets (a connection's API token and webhook secret, a team's chat webhook URL, which
lets anyone who has it post to the channel): whether each is set, and a field to replace or clear it. The value
itself is never rendered back, not even into a password field."""

from __future__ import annotations

from typing import Any

from django import forms

from reviews.models import Connection, Team

SECRET_FIELDS = ("api_token", "webhook_secret")


class ConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    api_token = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    webhook_secret = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    clear_api_token = forms.BooleanField(required=False, label="Clear the API token")
    clear_webhook_secret = forms.BooleanField(required=False, label="Clear the webhook secret")

    class Meta:
        model = Connection
        fields = ["provider", "name", "base_url", "web_url", "api_token", "webhook_secret"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            state = "set" if getattr(self.instance, name, "") else "not set"
            self.fields[name].help_text = f"Currently {state}. Type a new value to replace it; leave empty to keep it."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in SECRET_FIELDS:
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = ""
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name, "")  # kept as it is
        return cleaned


def secret_state(connection: Connection, name: str) -> str:
    return "set" if getattr(connection, name) else "not set"


class TeamForm(forms.ModelForm):  # type: ignore[type-arg]
    slack_webhook_url = forms.URLField(
        required=False,
        max_length=200,
        assume_scheme="https",
        label="Chat webhook URL",
        widget=forms.PasswordInput(render_value=False),
    )
    clear_slack_webhook_url = forms.BooleanField(required=False, label="Remove the chat webhook")

    class Meta:
        model = Team
        fields = ["name", "slug", "review_within_hours", "max_pr_size", "slack_webhook_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        state = "set" if self.instance.slack_webhook_url else "not set"
        self.fields["slack_webhook_url"].help_text = (
            f"Slack-compatible incoming webhook for notices (public addresses only). Currently {state}. "
            "Type a new URL to replace it; leave empty to keep it."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_slack_webhook_url"):
            cleaned["slack_webhook_url"] = ""
        elif not cleaned.get("slack_webhook_url"):
            cleaned["slack_webhook_url"] = self.instance.slack_webhook_url  # kept as it is
        return cleaned
