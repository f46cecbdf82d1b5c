"""Pages under load: 16 concurrent signed-in clients against gunicorn, p95 per page next to the
login page on the same server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench13_10000 \\
    REDIS_URL=redis://127.0.0.1:6379/13 \\
        SECRET_KEY=x .venv/bin/python benchmarks/load.py [--clients 16] [--seconds 30] [--workers 2]

Uses a database benchmarks/registry.py built (it adds a user `bench-load` and one patient with
500 B-cell results, both marked synthetic), starts gunicorn with `--workers` processes on a free
port, signs each client in, then each client requests the pages in turn for `--seconds`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_setup import free_port, gunicorn_start  # noqa: E402

PASSWORD = "bench-load-password"


def _prepare() -> str:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from patients.models import Center, Infusion, LabResult, Patient
    from patients.units import CELLS_PER_UL, PB, PB_BCELL_ABS

    user, _ = get_user_model().objects.get_or_create(
        username="bench-load", defaults={"is_superuser": True, "is_staff": True}
    )
    user.set_password(PASSWORD)
    user.save()
    patient = Patient.objects.filter(study_id="BENCH-500").first()
    if patient is None:
        patient = Patient.objects.create(
            center=Center.objects.first(), study_id="BENCH-500", is_synthetic=True
        )
        Infusion.objects.create(
            patient=patient, infusion_date=datetime(2024, 1, 1).date(), infusion_number=1
        )
        start = datetime(2024, 1, 2, 8, tzinfo=UTC)
        LabResult.objects.bulk_create(
            LabResult(
                patient=patient,
                analyte=PB_BCELL_ABS,
                specimen=PB,
                collected_at=start + timedelta(hours=12 * n),
                value=Decimal(n % 3),
                unit=CELLS_PER_UL,
                canonical_value=Decimal(n % 3),
                canonical_unit=CELLS_PER_UL,
            )
            for n in range(500)
        )
    return patient.study_id


def _session():
    return build_opener(HTTPCookieProcessor(CookieJar()))


def _get(opener, url: str) -> int:
    with opener.open(Request(url, headers={"Accept-Encoding": "gzip"}), timeout=60) as answer:
        answer.read()
        return answer.status


def _signed_in(base: str):
    session = _session()
    with session.open(f"{base}/login/") as answer:
        form = answer.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = {"username": "bench-load", "password": PASSWORD, "csrfmiddlewaretoken": token}
    request = Request(
        f"{base}/login/", data=urlencode(data).encode(), headers={"Referer": f"{base}/login/"}
    )
    with session.open(request) as answer:
        assert "logout" in answer.read().decode().lower(), "could not sign in"
    return session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carttrack.settings")
    os.environ["DEBUG"] = "False"
    os.environ["STATIC_MANIFEST"] = "True"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    study_id = _prepare()
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = gunicorn_start(port, options.workers, cwd=ROOT)
    try:
        for _ in range(100):
            try:
                _get(_session(), f"{base}/login/")
                break
            except (URLError, ConnectionError):
                time.sleep(0.2)
        pages = {
            "login page (anchor)": "/login/",
            "patient list": "/patients/",
            "patient page, 500 results": f"/patients/{study_id}/",
            "alert inbox": "/alerts/",
            "dashboard": "/dashboard/",
        }
        sessions = [_signed_in(base) for _ in range(options.clients)]
        for session in sessions[:1]:  # warm every page once (caches, snapshot JSON)
            for url in pages.values():
                _get(session, base + url)
        times: dict[str, list[float]] = {name: [] for name in pages}
        lock = threading.Lock()
        deadline = time.perf_counter() + options.seconds

        def client(session, offset: int) -> None:
            names = list(pages)
            i = offset
            while time.perf_counter() < deadline:
                name = names[i % len(names)]
                # The login page is fetched signed out, as a visitor would.
                opener = _session() if name.startswith("login") else session
                started = time.perf_counter()
                status = _get(opener, base + pages[name])
                elapsed = time.perf_counter() - started
                assert status == 200, (name, status)
                with lock:
                    times[name].append(elapsed)
                i += 1

        threads = [threading.Thread(target=client, args=(s, n)) for n, s in enumerate(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(30)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1] * 1000 if len(values) > 1 else float("nan")

    anchor = p95(times["login page (anchor)"])
    print(f"{options.clients} clients, {options.workers} gunicorn workers, {options.seconds:.0f} s")
    print("\n| page | requests | p95 ms | login p95 ms | ratio |\n|---|---:|---:|---:|---|")
    for name, values in times.items():
        print(
            f"| {name} | {len(values)} | {p95(values):.0f} | {anchor:.0f} | "
            f"{p95(values) / anchor:.1f}× (target 2×) |"
        )


if __name__ == "__main__":
    main()
