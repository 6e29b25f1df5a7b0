"""Filters of the container list: state, team, host, image, label."""

import re

import django_filters
from django.db.models import Q

from config.errors import InvalidRequest
from config.ids import as_id, is_id
from containers.models import Container

LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


class ContainerFilter(django_filters.FilterSet):
    """?state=&desired_state=&team=&host=&image=&label=key[=value]."""

    # Without ?state= the list leaves removed containers out (containers/api/views.py).
    state = django_filters.ChoiceFilter(
        field_name="observed_state", choices=Container.Observed.choices
    )
    desired_state = django_filters.CharFilter()
    team = django_filters.CharFilter(method="filter_team")
    host = django_filters.CharFilter(method="filter_host")
    image = django_filters.CharFilter()
    label = django_filters.CharFilter(method="filter_label")

    class Meta:
        model = Container
        fields = ["state", "desired_state", "team", "host", "image", "label"]

    def filter_team(self, queryset, name, value):
        return queryset.filter(
            Q(team__name=value) | Q(team_id=as_id(value)) if is_id(value) else Q(team__name=value)
        )

    def filter_host(self, queryset, name, value):
        return queryset.filter(
            Q(host__name=value) | Q(host_id=as_id(value)) if is_id(value) else Q(host__name=value)
        )

    def filter_label(self, queryset, name, value):
        key, sep, wanted = value.partition("=")
        if not LABEL_KEY_RE.match(key):
            raise InvalidRequest(f"invalid label key {key!r}")
        if sep:
            return queryset.filter(**{f"labels__{key}": wanted})
        return queryset.filter(**{"labels__has_key": key})
