from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Data import"

    def ready(self):
        # The background job formats (imports.formats.registry), registered here so that
        # neither the registry nor the jobs name a format module.
        from imports.formats.lab_json import lab_job_records
        from imports.formats.registry import JobFormat, format_register
        from imports.uploads import upload_batch, upload_finished

        format_register(JobFormat(kind="lab_batch", records=lab_job_records))
        format_register(
            JobFormat(
                kind="spreadsheet",
                records=lambda payload: upload_batch(payload["upload_id"]),
                finished=upload_finished,
            )
        )
