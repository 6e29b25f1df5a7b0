"""URLs of the dashboard (namespace `dashboard`), mounted at the site root."""

from django.urls import path
from registries import dashboard_views as registry_pages

from dashboard.views import (
    admin,
    audit,
    auth,
    container_detail,
    containers,
    create,
    home,
    hosts,
    images,
    netvol,
    people,
    resources,
    terminal,
)

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    # Containers
    path("containers/", containers.container_list, name="containers"),
    path("containers/bulk/", containers.bulk_action, name="containers_bulk"),
    path("containers/new/", create.container_create, name="container_create"),
    path("containers/<int:pk>/", container_detail.detail, name="container_detail"),
    path("containers/<int:pk>/state/", container_detail.state_fragment, name="container_state"),
    path("containers/<int:pk>/action/", container_detail.action, name="container_action"),
    path("containers/<int:pk>/rename/", container_detail.rename, name="container_rename"),
    path("containers/<int:pk>/logs/", container_detail.logs, name="container_logs"),
    path(
        "containers/<int:pk>/logs/download/",
        container_detail.logs_download,
        name="container_logs_download",
    ),
    path("containers/<int:pk>/stats/", container_detail.stats, name="container_stats"),
    path("containers/<int:pk>/top/", container_detail.top, name="container_top"),
    path("containers/<int:pk>/terminal/", terminal.terminal_page, name="container_terminal"),
    # Other resources
    path("images/", resources.images, name="images"),
    path("images/import/", images.image_import, name="image_import"),
    path("images/pull/", registry_pages.pull_page, name="image_pull"),
    path("images/<int:pk>/", resources.image_detail, name="image_detail"),
    path("images/<int:pk>/tag/", images.image_tag, name="image_tag"),
    path("images/<int:pk>/delete/", images.image_delete, name="image_delete"),
    path("networks/", resources.networks, name="networks"),
    path("networks/new/", netvol.network_create, name="network_create"),
    path("networks/<int:pk>/remove/", netvol.network_remove, name="network_remove"),
    path("volumes/", resources.volumes, name="volumes"),
    path("volumes/new/", netvol.volume_create, name="volume_create"),
    path("volumes/<int:pk>/remove/", netvol.volume_remove, name="volume_remove"),
    path("operations/", netvol.operations, name="operations"),
    path("operations/<int:pk>/progress/", registry_pages.progress_page, name="operation_progress"),
    path("hosts/", resources.hosts, name="hosts"),
    path("hosts/new/", hosts.host_add, name="host_add"),
    path("hosts/<int:pk>/cordon/", hosts.host_cordon, name="host_cordon"),
    path("hosts/<int:pk>/uncordon/", hosts.host_uncordon, name="host_uncordon"),
    path("hosts/<int:pk>/remove/", hosts.host_remove, name="host_remove"),
    path("hosts/<int:pk>/drain/", hosts.host_drain, name="host_drain"),
    path("hosts/<int:pk>/cancel/", hosts.host_cancel, name="host_cancel"),
    path("hosts/<int:pk>/forget/", hosts.host_forget, name="host_forget"),
    # Administration
    path("manage/users/", admin.users, name="users"),
    path("manage/users/new/", people.user_create, name="user_create"),
    path("manage/users/<int:pk>/flags/", people.user_flags, name="user_flags"),
    path("manage/teams/", admin.teams, name="teams"),
    path("manage/teams/new/", people.team_create, name="team_create"),
    path("manage/teams/<int:pk>/members/", people.team_members, name="team_members"),
    path("manage/roles/", admin.roles, name="roles"),
    path("manage/roles/new/", admin.role_create, name="role_create"),
    path("manage/bindings/", admin.bindings, name="bindings"),
    path("manage/bindings/<int:pk>/delete/", admin.binding_delete, name="binding_delete"),
    path("manage/tokens/", admin.tokens, name="tokens"),
    path("manage/tokens/<int:pk>/revoke/", admin.token_revoke, name="token_revoke"),
    path("manage/audit/", audit.audit_log, name="audit"),
    path("manage/audit/export/", audit.audit_export, name="audit_export"),
]
