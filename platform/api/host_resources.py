"""Create and remove a per-host, per-team resource (network, volume) as an agent operation."""

from api.lookups import pick_host, pick_team
from api.waiting import operation_response, wait_seconds
from config.errors import Conflict
from containers import quotas
from operations.services import do_host_operation


class HostResourceMixin:
    """`create` and `destroy` for a GatedViewSet whose model has team, host and name.

    Subclasses set `resource` (also the Operation kinds' prefix), `create_serializer_class`
    and `serializer_class`, and may override `create_options(obj)` for the gate.
    """

    create_serializer_class = None

    def create_options(self, obj) -> dict | None:
        """Options the gate checks on top of the create permission."""
        return None

    def enforce_quota(self, team) -> None:
        """Raise quotas.QuotaExceeded if one more would pass the team's quota (default: none)."""

    def create(self, request):
        """Create it on a host (202 with the Operation)."""
        wait_seconds(request)
        # Refuse (and audit) before the body names a team the caller may not even see.
        self.require()
        body = self.create_serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        team = pick_team(request.user, data.pop("team", None))
        host = pick_host(request.user, data.pop("host", None))
        model = self.queryset.model
        obj = model(team=team, host=host, **data)
        decision = self.require(obj, options=self.create_options(obj))
        if model.objects.filter(host=host, name=obj.name).exists():
            raise Conflict(f"{self.resource} {obj.name!r} already exists on host {host.name}")

        def save():
            self.enforce_quota(team)  # inside the writing transaction
            obj.save(force_insert=True)
            return obj.pk

        with quotas.guarded(decision, self.summary()):
            op = do_host_operation(
                decision,
                kind=f"{self.resource}.create",
                target_type=self.resource,
                host=host,
                team=team,
                acting_user=request.user,
                summary=self.summary() | {"body": request.data},
                before=save,
            )
        return operation_response(request, op, {self.resource: self.serializer_class(obj).data})

    def destroy(self, request, pk=None):
        """Remove it (202 with the Operation)."""
        wait_seconds(request)
        obj = self.get_object()
        decision = self.require(obj)
        op = do_host_operation(
            decision,
            kind=f"{self.resource}.remove",
            target_type=self.resource,
            target_id=obj.pk,
            host=obj.host,
            team=obj.team,
            acting_user=request.user,
            summary=self.summary(),
        )
        return operation_response(request, op)
