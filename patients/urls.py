from django.urls import path

from patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_edit, name="add"),
    path("<str:study_id>/", views.patient_detail, name="detail"),
    path("<str:study_id>/edit/", views.patient_edit, name="edit"),
    path("<str:study_id>/samples/add/", views.sample_add, name="sample_add"),
    path("<str:study_id>/history/", views.record_history, name="history"),
    path("<str:study_id>/<str:kind>/add/", views.record_edit, name="record_add"),
    path("<str:study_id>/<str:kind>/<int:pk>/edit/", views.record_edit, name="record_edit"),
    path("<str:study_id>/<str:kind>/<int:pk>/delete/", views.record_delete, name="record_delete"),
    path(
        "<str:study_id>/<str:kind>/<int:pk>/history/", views.record_history, name="record_history"
    ),
]
