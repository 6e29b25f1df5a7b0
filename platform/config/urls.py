"""Root URLs: the REST API under /api/v1/, its OpenAPI schema and docs, the Docker Engine API
(/_ping, /version, /v1.NN/...; dockerapi/), the dashboard."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from metrics.views import metrics

urlpatterns = [
    path("api/v1/", include("api.urls")),
    # Backups page (issue 12), before the dashboard catch-all paths.
    path("backups/", include("backups.urls")),
    # Prometheus (metrics/): a metrics.read token or an address in BERTH_METRICS_ALLOW.
    path("metrics", metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # GET only: its HTML renderer has no page for an OPTIONS description (answered 500).
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="api-docs",
    ),
    # The Docker Engine API for the docker CLI and SDKs (docs/docker-api.md): bearer tokens only.
    path("", include("dockerapi.urls")),
    # Single sign-on (OIDC) and the directory's mappings page (directory/).
    path("", include("directory.urls")),
    # Compliance pages (issue 13), before the dashboard's catch-all paths.
    path("compliance/", include("compliance.urls")),
    # The browser dashboard owns every other path.
    path("", include("dashboard.urls")),
]

# A body over the size limit, found before any view runs, is a 413 (config/error_pages.py).
handler400 = "config.error_pages.bad_request"
