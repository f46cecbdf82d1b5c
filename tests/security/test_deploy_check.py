"""The production profile (DEPLOYMENT=production) passes `manage.py check --deploy` with no
warning at all, and turns on HSTS, the HTTPS redirect and secure cookies."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env) -> subprocess.CompletedProcess:
    environ = {
        key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECURE_COOKIES")
    }
    environ.update(
        {
            "DEPLOYMENT": "production",
            "SECRET_KEY": "x7#Qm2!vR9pL0zT4&kW8nB3^cY6hJ1sD5fG0aE7uI2oP9lK4jH",
            "ALLOWED_HOSTS": "carttrack.hospital.example",
            "DEBUG": "False",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, *code.split()], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_check_deploy_reports_nothing_in_production():
    result = _run("manage.py check --deploy --fail-level DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_without_the_production_profile():
    result = _run("manage.py check --deploy", DEPLOYMENT="development")
    assert "security.W004" in result.stderr + result.stdout  # no HSTS: the check works


def test_production_settings():
    code = (
        "-c import django,os;os.environ['DJANGO_SETTINGS_MODULE']='carttrack.settings';"
        "django.setup();from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT,s.SECURE_HSTS_SECONDS,s.SESSION_COOKIE_SECURE,"
        "s.CSRF_COOKIE_SECURE,s.SECURE_PROXY_SSL_HEADER[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code.split(" ", 1)[1]],
        cwd=ROOT,
        env={**os.environ, "DEPLOYMENT": "production"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == ["True", "31536000", "True", "True", "HTTP_X_FORWARDED_PROTO"]
