"""PostgreSQL refuses TRUNCATE of the access log and of every change-history table
(`patients_historical*`), as it already refuses UPDATE and DELETE of their rows (audit 0002,
patients 0004): a statement-level BEFORE TRUNCATE trigger raises.

The test suite's flush (pytest-django's transactional tests) truncates every table; it runs
against a test database on which `tests/conftest.py` sets `carttrack.allow_truncate = on`
(ALTER DATABASE). A production database has no such setting; its owner, who could set it,
could equally drop the trigger (SECURITY.md, Limits)."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION carttrack_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('carttrack.allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'append-only table (TRUNCATE of % refused)', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER {table}_no_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION carttrack_refuse_truncate();
"""
DROP_TRIGGER = "DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};"


def append_only_tables(apps) -> list[str]:
    history = [
        model._meta.db_table
        for model in apps.get_app_config("patients").get_models()
        if model._meta.db_table.startswith("patients_historical")
    ]
    return sorted(["audit_accessevent", *history])


def protect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in append_only_tables(apps):
        schema_editor.execute(TRIGGER.format(table=table), params=None)


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in append_only_tables(apps):
        schema_editor.execute(DROP_TRIGGER.format(table=table), params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS carttrack_refuse_truncate();", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_i11_access_event_append_only"),
        ("patients", "0004_history_append_only"),
    ]

    operations = [migrations.RunPython(protect, unprotect)]
