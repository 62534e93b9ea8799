"""webui.settings: embedded development defaults, and production settings that pass
`manage.py check --deploy`. Each case runs Django in a fresh subprocess, because
settings are read once per process."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PRINT_SETTINGS = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "DB": str(settings.DATABASES["default"]["NAME"]),
    "CHANNEL_LAYER": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "FIRST_APP": settings.INSTALLED_APPS[0],
    "ASGI_APPLICATION": settings.ASGI_APPLICATION,
    "SERVE_STATIC": settings.SLIPWAY_SERVE_STATIC,
}))
"""


def run_django(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python in the repo with only the given SLIPWAY_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    clean["DJANGO_SETTINGS_MODULE"] = "webui.settings"
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def production_secret_key() -> str:
    return secrets.token_urlsafe(50)


def test_development_defaults_are_embedded() -> None:
    result = run_django(["-c", PRINT_SETTINGS])

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": True,
        "DB": str(REPO_ROOT / "db.sqlite3"),
        "CHANNEL_LAYER": "channels.layers.InMemoryChannelLayer",
        "FIRST_APP": "daphne",
        "ASGI_APPLICATION": "webui.asgi.application",
        "SERVE_STATIC": True,
    }


def test_database_path_comes_from_slipway_db_path(tmp_path: Path) -> None:
    result = run_django(["-c", PRINT_SETTINGS], SLIPWAY_DB_PATH=str(tmp_path / "x.sqlite3"))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["DB"] == str(tmp_path / "x.sqlite3")


def test_production_turns_debug_and_static_serving_off() -> None:
    result = run_django(
        ["-c", PRINT_SETTINGS],
        SLIPWAY_ENV="production",
        SLIPWAY_SECRET_KEY=production_secret_key(),
        SLIPWAY_DEBUG="1",
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["DEBUG"] is False
    assert printed["SERVE_STATIC"] is False


def test_production_settings_pass_check_deploy_without_warnings() -> None:
    result = run_django(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SLIPWAY_ENV="production",
        SLIPWAY_SECRET_KEY=production_secret_key(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = run_django(["manage.py", "check"], SLIPWAY_ENV="production")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SLIPWAY_SECRET_KEY" in result.stderr


def test_unknown_slipway_env_is_refused() -> None:
    result = run_django(["manage.py", "check"], SLIPWAY_ENV="prod")

    assert result.returncode != 0
    assert "SLIPWAY_ENV must be 'development' or 'production'" in result.stderr
