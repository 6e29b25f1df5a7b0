"""Dashboard pages of compliance (namespace `compliance`), mounted at /compliance/."""

from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("", views.compliance_page, name="page"),
    path("export.<str:fmt>", views.compliance_export, name="export"),
    path("run/", views.compliance_run, name="run"),
    path("osv/", views.osv_import, name="osv_import"),
    path("rollouts/", views.rollout_plan, name="rollout_plan"),
    path("rollouts/<int:pk>/start/", views.rollout_start, name="rollout_start"),
    path("schedules/", views.schedule_set, name="schedule_set"),
    path("schedules/<int:pk>/remove/", views.schedule_remove, name="schedule_remove"),
    path("exceptions/", views.exception_create, name="exception_create"),
    path("exceptions/<int:pk>/revoke/", views.exception_revoke, name="exception_revoke"),
]
