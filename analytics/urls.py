from django.urls import path

from analytics import publication_views, rule_views, views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("refresh/", views.refresh, name="refresh"),
    path("runs/<int:pk>/", views.run_status, name="run_status"),
    path("snapshots/<int:pk>/figures.json", views.figures_json, name="figures"),
    path("snapshots/<int:pk>/figures-own.json", views.figures_own_json, name="figures_own"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("data-dictionary/", views.data_dictionary, name="data_dictionary"),
    path("tables/", publication_views.publication_tables, name="tables"),
    path("rules/", rule_views.rule_performance, name="rules"),
    path("rules/alerts.csv", rule_views.export_alerts, name="export_alerts"),
    path("rules/bcells.csv", rule_views.export_bcells, name="export_bcells"),
]
