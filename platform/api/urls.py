"""/api/v1/ routes: one router, one viewset per resource."""

from django.urls import path, re_path
from registries.api.views import ImageActionViewSet, OperationProgressViewSet, RegistryViewSet
from rest_framework.routers import DefaultRouter

from accounts.api.views import TeamViewSet, TokenViewSet, UserViewSet
from api.views import api_not_found
from audit.api.views import AuditEventViewSet
from backups.api.views import BackupRunViewSet
from compliance.api.recipes import BuildRecipeViewSet
from compliance.api.rollouts import RolloutViewSet
from compliance.api.schedules import RolloutScheduleViewSet
from compliance.api.views import (
    CheckViewSet,
    ExceptionViewSet,
    FindingViewSet,
    RunViewSet,
    ScoreViewSet,
)
from compliance.api.vulns import AdvisoryViewSet, InventoryViewSet, OsvImportViewSet
from containers.api.views import ContainerViewSet
from directory.api.views import GroupMappingViewSet
from hosts.api.join import HostJoinViewSet
from hosts.api.views import HostViewSet
from images.api.views import ImageViewSet
from networks.api.views import NetworkViewSet
from operations.api.views import OperationViewSet
from rbac.api.views import BindingViewSet, RoleViewSet
from transfers.files import host_file
from transfers.views import transfer_data
from volumes.api.views import VolumeViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
# No `.json` suffix routes: the views take no `format` argument (a POST to one answered 500),
# and one path per resource keeps the surface the gate guards small.
router.include_format_suffixes = False
router.register("containers", ContainerViewSet, basename="container")
# Before "images": its detail route would take "pull" or "build" for an image id.
router.register("images", ImageActionViewSet, basename="image-action")
router.register("images", ImageViewSet, basename="image")
router.register("networks", NetworkViewSet, basename="network")
router.register("volumes", VolumeViewSet, basename="volume")
# Before "hosts": its detail route would take "join" for a host id.
router.register("hosts/join", HostJoinViewSet, basename="host-join")
router.register("hosts", HostViewSet, basename="host")
router.register("users", UserViewSet, basename="user")
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", TokenViewSet, basename="token")
router.register("roles", RoleViewSet, basename="role")
router.register("bindings", BindingViewSet, basename="binding")
router.register("operations", OperationViewSet, basename="operation")
router.register("operations", OperationProgressViewSet, basename="operation-progress")
router.register("registries", RegistryViewSet, basename="registry")
router.register("audit", AuditEventViewSet, basename="audit")
router.register("backups", BackupRunViewSet, basename="backup")
router.register("directory/mappings", GroupMappingViewSet, basename="directory-mapping")
router.register("compliance/checks", CheckViewSet, basename="compliance-check")
router.register("compliance/runs", RunViewSet, basename="compliance-run")
router.register("compliance/findings", FindingViewSet, basename="compliance-finding")
router.register("compliance/scores", ScoreViewSet, basename="compliance-score")
router.register("compliance/exceptions", ExceptionViewSet, basename="compliance-exception")
router.register("compliance/inventories", InventoryViewSet, basename="compliance-inventory")
router.register("compliance/advisories", AdvisoryViewSet, basename="compliance-advisory")
router.register("compliance/osv-imports", OsvImportViewSet, basename="compliance-osv-import")
router.register("compliance/rollouts", RolloutViewSet, basename="compliance-rollout")
router.register(
    "compliance/rollout-schedules", RolloutScheduleViewSet, basename="compliance-rollout-schedule"
)
router.register("compliance/recipes", BuildRecipeViewSet, basename="compliance-recipe")

urlpatterns = [
    *router.urls,
    # Host-to-host archives: signed by host keys, not by users (transfers/hostauth.py).
    path("transfers/<str:pk>/data/", transfer_data, name="transfer-data"),
    # Uploads and downloads of an agent without the web's data directory (transfers/files.py).
    path("transfers/files/<str:name>/", host_file, name="transfer-file"),
    re_path(r"^.*$", api_not_found),
]
