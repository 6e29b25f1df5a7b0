"""URLs of directory (namespace `directory`): OIDC sign-in and the mappings page."""

from django.urls import path

from directory import views, views_sso

app_name = "directory"

urlpatterns = [
    path("sso/oidc/login/", views_sso.oidc_login, name="oidc_login"),
    path("sso/oidc/callback/", views_sso.oidc_callback, name="oidc_callback"),
    path("sso/oidc/logout/", views_sso.oidc_logout, name="oidc_logout"),
    path("manage/directory/", views.mappings, name="mappings"),
    path("manage/directory/<int:pk>/delete/", views.mapping_delete, name="mapping_delete"),
]
