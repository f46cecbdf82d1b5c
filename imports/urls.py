from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("template.<str:fmt>", views.template_download, name="template"),
    path("<int:pk>/", views.upload_detail, name="detail"),
    path("<int:pk>/confirm/", views.upload_confirm, name="confirm"),
    path("<int:pk>/status.json", views.upload_status, name="status"),
]
