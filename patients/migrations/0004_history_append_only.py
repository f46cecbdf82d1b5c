"""PostgreSQL refuses UPDATE and DELETE on every change-history table of the clinical records
(django-simple-history's `patients_historical*` tables), whatever code or admin asks, as it
already does for the access log (audit 0002). New history rows are still written by every
save, bulk import (COPY) and delete. TRUNCATE (the test suite's flush) is not a row operation
and stays possible; SQLite (the embedded demo) relies on the application and the admin.

A history row names its author (`history_user`, SET_NULL): deleting a user who changed a
record would rewrite the history, so the admin no longer deletes users (deactivate them
instead; `audit/admin.py`). `tests/security/test_history_append_only.py` fails if a history
table is added without this trigger."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION patients_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the change history is append-only (% on % refused)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION patients_history_append_only();
"""
DROP_TRIGGER = "DROP TRIGGER IF EXISTS {table}_append_only ON {table};"
DROP_FUNCTION = "DROP FUNCTION IF EXISTS patients_history_append_only();"


def history_tables(apps) -> list[str]:
    """Every change-history table of the clinical app in the migration state."""
    return sorted(
        model._meta.db_table
        for model in apps.get_app_config("patients").get_models()
        if model._meta.db_table.startswith("patients_historical")
    )


def protect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in history_tables(apps):
        schema_editor.execute(TRIGGER.format(table=table), params=None)


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in history_tables(apps):
        schema_editor.execute(DROP_TRIGGER.format(table=table), params=None)
    schema_editor.execute(DROP_FUNCTION, params=None)


class Migration(migrations.Migration):
    dependencies = [("patients", "0003_merge_20261126_0238")]

    operations = [migrations.RunPython(protect, unprotect)]
