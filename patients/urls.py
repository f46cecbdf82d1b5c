from urllib.parse import quote, unquote

from django.urls import path, register_converter

from patients import views


class StudyIdConverter:
    """A study ID in a path segment. Valid IDs are plain and appear as they are; an older ID
    with a "/" or a line break (reported by migration 0002) is percent-encoded, so every link
    still resolves and no page fails because of one patient's ID."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        return quote(str(value), safe="")


register_converter(StudyIdConverter, "sid")

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_edit, name="add"),
    path("<sid:study_id>/", views.patient_detail, name="detail"),
    path("<sid:study_id>/edit/", views.patient_edit, name="edit"),
    path("<sid:study_id>/samples/add/", views.sample_add, name="sample_add"),
    path("<sid:study_id>/history/", views.record_history, name="history"),
    path("<sid:study_id>/<str:kind>/add/", views.record_edit, name="record_add"),
    path("<sid:study_id>/<str:kind>/<int:pk>/edit/", views.record_edit, name="record_edit"),
    path("<sid:study_id>/<str:kind>/<int:pk>/delete/", views.record_delete, name="record_delete"),
    path(
        "<sid:study_id>/<str:kind>/<int:pk>/history/", views.record_history, name="record_history"
    ),
]
