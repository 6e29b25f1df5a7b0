"""The base of every API view: each declares an action map, and every request goes through the gate.

    class ThingViewSet(GatedViewSet):
        resource = "thing"
        gate_actions = {"list": "thing.view", "retrieve": "thing.view", "start": "thing.start"}

`initial()` refuses any action missing from the map (fail closed), answers 405 (with `Allow`) for a
method the route does not map, and lets OPTIONS describe the resource to those who may view it;
`get_queryset()` is always
`gate.restrict(...)`, and `get_object()` looks up only what the user may view; anything else
answers 404 and is audited. The guard test walks every URL and checks these declarations.
"""

import copy
import dataclasses

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from rest_framework import status, viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.response import Response

from accounts.models import TOKEN_PREFIX
from api import object_lookup
from api.metadata import GatedMetadata
from rbac import gate

# Query parameters whose values are never written to the audit log (a client may put a token
# or a password in the URL; the append-only log must not keep it forever).
_SECRET_PARAMS = ("token", "password", "secret", "key", "auth", "credential")


def is_id(text: str) -> bool:
    """Whether `text` can be a primary key: ASCII digits that fit a 64-bit integer."""
    return text.isascii() and text.isdigit() and int(text) < 2**63


def _redacted(name: str, value):
    """`value`, or a placeholder when the parameter or the value looks like a secret."""
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_PARAMS) or str(value).startswith(TOKEN_PREFIX):
        return "[redacted]"
    return value


class GatedViewSet(viewsets.GenericViewSet):
    """A viewset whose every action is declared in `gate_actions` and decided by the gate."""

    resource: str = ""
    gate_actions: dict[str, str] = {}
    view_action: str = ""  # the permission that makes an object visible; default <resource>.view
    metadata_class = GatedMetadata

    @property
    def view_permission(self) -> str:
        """The permission that makes the resource's objects visible."""
        return self.view_action or f"{self.resource}.view"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action is None:
            # A method this route does not map (TRACE, PUT on containers): a client's mistake,
            # answered after authentication like DRF does; the response carries `Allow`.
            raise MethodNotAllowed(request.method)
        if self.action == "metadata" and "metadata" not in self.gate_actions:
            # OPTIONS describes the endpoint: whoever may view the resource may read it.
            self.permission_code = self.view_permission
            return
        if self.action not in self.gate_actions:
            raise ImproperlyConfigured(
                f"{type(self).__name__}.{self.action} is not in its gate_actions"
            )
        self.permission_code = self.gate_actions[self.action]

    def base_queryset(self):
        """Every object of the resource, before the gate filters it."""
        return self.queryset.all()

    def get_queryset(self):
        code = getattr(self, "permission_code", None) or self.view_permission
        return gate.restrict(self.base_queryset(), self.request.user, code)

    def get_object(self):
        """The object named in the URL if the user may view it; otherwise an audited 404."""
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        user, code = self.request.user, self.view_permission

        def visible():
            return gate.restrict(self.base_queryset(), user, code)

        obj = None
        if self.lookup_field != "pk":
            obj = visible().filter(**{self.lookup_field: lookup}).first()
        # ASCII digits only: "²" and "١٢" pass str.isdigit() but are not ids; nor is a number
        # past the 64-bit columns (SQLite refuses it rather than matching nothing).
        elif is_id(str(lookup)):
            model = self.queryset.model
            key = gate.restrict_key(user, code, model)
            shape = None if key is None else (type(self), key)
            obj = object_lookup.visible_by_pk(visible, model, shape, int(lookup))
        if obj is None:
            gate.not_visible(self.request.user, self.permission_code, self.resource, lookup)
        return obj

    def options(self, request, *args, **kwargs):
        """OPTIONS: DRF's description of the endpoint, once the gate allows (and audits) it."""
        self.authorize()
        return super().options(request, *args, **kwargs)

    def summary(self) -> dict:
        """What the audit event keeps of the request: method, path and query."""
        request = self.request
        data = {"method": request.method, "path": request.path}
        if request.query_params:
            data["query"] = {
                k: _redacted(k, request.query_params.get(k))
                for k in list(request.query_params)[:20]
            }
        return data

    def authorize(self, obj=None, *, options=None, operation=None):
        """Decide this request's action (on obj) and audit it; raises on refusal."""
        return gate.authorize(
            self.request.user,
            self.permission_code,
            obj,
            resource=self.resource,
            options=options,
            summary=self.summary(),
            operation=operation,
        )

    def require(self, obj=None, *, options=None, action=None):
        """Decide; a refusal is audited and raised, an allowance returned for gate.record()."""
        return gate.require(
            self.request.user,
            action or self.permission_code,
            obj,
            resource=self.resource,
            options=options,
            summary=self.summary(),
        )


class GatedListMixin:
    """GET on the collection: filtered, searched, ordered and paginated after the gate allows it."""

    def list(self, request, *args, **kwargs):
        self.authorize()
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.get_serializer(page if page is not None else queryset, many=True)
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)


class GatedRetrieveMixin:
    """GET on one object."""

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        self.authorize(obj)
        return Response(self.get_serializer(obj).data)


class GatedCreateMixin:
    """POST a database-only object: decided on the unsaved object, saved and audited together."""

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        obj = self.build_instance(serializer)
        decision = self.require(obj, options=self.create_options(obj))
        with transaction.atomic():
            obj = self.save_instance(serializer, obj)
            # The audit event names the saved object (with its id), not the unsaved draft.
            gate.record(dataclasses.replace(decision, obj=obj), summary=self.summary())
        return Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED)

    def create_options(self, obj) -> dict | None:
        """Options the gate judges on top of the create permission (e.g. escalation)."""
        return None

    def build_instance(self, serializer):
        """The unsaved object the gate decides on (scope fields set)."""
        data = {k: v for k, v in serializer.validated_data.items() if not isinstance(v, list)}
        return serializer.Meta.model(**data)

    def save_instance(self, serializer, obj):
        """Save it (and its many-to-many data)."""
        return serializer.save()


class GatedUpdateMixin:
    """PATCH/PUT: decided on the object before and after the change (no moving it out of reach)."""

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        obj = self.get_object()
        self.require(obj)
        serializer = self.get_serializer(obj, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        # Decide again on the object as it will be, so nobody edits it into another scope.
        preview = copy.copy(obj)
        for name, value in serializer.validated_data.items():
            if not isinstance(value, list):
                setattr(preview, name, value)
        decision = self.require(preview)
        with transaction.atomic():
            obj = serializer.save()
            gate.record(decision, summary=self.summary())
        return Response(self.get_serializer(obj).data)

    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)


class GatedDestroyMixin:
    """DELETE a database-only object."""

    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        decision = self.require(obj)
        with transaction.atomic():
            gate.record(decision, summary=self.summary())
            self.perform_destroy(obj)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def perform_destroy(self, obj):
        """Delete it."""
        obj.delete()
