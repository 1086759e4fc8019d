"""The admin's view of secrets (a connection's API token and webhook secret, a team's chat webhook URL, which
lets anyone who has it post to the channel): whether each is set, and a field to replace or clear it. The value
itself is never rendered back, not even into a password field."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django import forms
from django.core.exceptions import ValidationError

from reviews.models import Connection, Provider, Team

SECRET_FIELDS = ("api_token", "webhook_secret", "app_private_key")


class _NeverShownTextarea(forms.Textarea):
    """A textarea for a secret: empty on every render, a refused form's too (PasswordInput's render_value=False)."""

    def format_value(self, value: Any) -> None:
        return None


class ConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    api_token = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    webhook_secret = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    app_private_key = forms.CharField(
        required=False,
        strip=True,
        label="GitHub App private key",
        # A textarea that is never filled in: the key is pasted, never shown.
        widget=_NeverShownTextarea(
            attrs={"rows": 4, "autocomplete": "off", "placeholder": "-----BEGIN RSA PRIVATE KEY-----"}
        ),
    )
    clear_api_token = forms.BooleanField(required=False, label="Clear the API token")
    clear_webhook_secret = forms.BooleanField(required=False, label="Clear the webhook secret")
    clear_app_private_key = forms.BooleanField(required=False, label="Clear the GitHub App private key")

    class Meta:
        model = Connection
        fields = [
            "provider",
            "name",
            "base_url",
            "web_url",
            "api_token",
            "webhook_secret",
            "app_id",
            "app_private_key",
            "app_installation_id",
            "app_account",
            "report_as_check_run",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["app_private_key"] = ""  # never rendered back
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
        self._app_check(cleaned)
        return cleaned

    def _app_check(self, cleaned: dict[str, Any]) -> None:
        app_fields = ("app_id", "app_private_key", "app_installation_id", "app_account", "report_as_check_run")
        if cleaned.get("provider") != Provider.GITHUB:
            if any(cleaned.get(name) for name in app_fields):
                raise ValidationError("Only a GitHub connection can be a GitHub App.")
            return
        app_id = str(cleaned.get("app_id") or "").strip()
        if app_id and not app_id.isdigit():
            self.add_error("app_id", "A GitHub App id is a number (the App's settings page shows it).")
        key = cleaned.get("app_private_key") or ""
        if key and "app_private_key" in self.changed_data:
            problem = private_key_problem(key)
            if problem:
                self.add_error("app_private_key", problem)
        if cleaned.get("report_as_check_run") and not app_id:
            self.add_error("report_as_check_run", "Check runs are a GitHub App's: set the App id and its key first.")


def private_key_problem(pem: str) -> str:
    """Why a pasted key cannot sign the App's JWTs (RS256); "" when it can."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        return f"Not a private key in PEM without a passphrase: {error}"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "GitHub Apps sign with an RSA key: this is another kind."
    return ""


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
