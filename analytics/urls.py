from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("refresh/", views.refresh, name="refresh"),
    path("runs/<int:pk>/", views.run_status, name="run_status"),
    path("snapshots/<int:pk>/figures.json", views.figures_json, name="figures"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("data-dictionary/", views.data_dictionary, name="data_dictionary"),
]
