from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("template.<str:fmt>", views.template_download, name="template"),
    path("<int:pk>/", views.upload_detail, name="detail"),
    path("<int:pk>/confirm/", views.upload_confirm, name="confirm"),
    path("<int:pk>/status.json", views.upload_status, name="status"),
    path("held/", views.held_results, name="held"),
    path("held/retry/", views.held_results_retry_view, name="held_retry"),
    path("held/<int:pk>/dismiss/", views.held_result_dismiss_view, name="held_dismiss"),
]
