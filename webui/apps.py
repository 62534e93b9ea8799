"""The Django app config for the web UI."""

from django.apps import AppConfig


class WebuiConfig(AppConfig):
    name = "webui"
    verbose_name = "Slipway web UI"
    default_auto_field = "django.db.models.BigAutoField"
