"""Docker API paths: /_ping and /version unversioned, everything under /v<major>.<minor>/."""

from django.urls import re_path

from dockerapi.router import entry

urlpatterns = [
    re_path(r"^(?P<rest>_ping|version)$", entry, name="docker-unversioned"),
    re_path(r"^v(?P<version>\d+\.\d+)/(?P<rest>.*)$", entry, name="docker-api"),
]
