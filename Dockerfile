# CARTtrack image: one image for web (gunicorn), worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# pg_dump/pg_restore for `manage.py backup_create`/`backup_verify` (Debian 12's client is 15,
# the major version of the compose file's postgres:15).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are collected at build time; whitenoise serves them.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --create-home carttrack
USER carttrack
EXPOSE 8000
CMD ["gunicorn", "carttrack.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
