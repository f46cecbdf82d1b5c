"""Bulk ingest of clinical records: validate a whole batch first, then write it in bulk.

`records` holds the plain, already-parsed records (from the API, a spreadsheet, FHIR or the demo
generator), `checks` validates each with the models' own rules against facts pre-loaded for the
whole batch, and `write` stores everything with its audit history. The orchestration that also
re-evaluates the alerts lives a floor higher, in `imports.services`.
"""
