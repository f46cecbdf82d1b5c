"""The synthetic demo cohort: its generator (`cohort`) and its loader (`load`, `load_demo_cohort`).

A roof app: the loader stores the cohort through the import path and closes alerts, so it may
import every floor (imports, monitoring, analytics); no floor imports it.
"""
