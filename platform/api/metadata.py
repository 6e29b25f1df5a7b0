"""OPTIONS answers: DRF's description of an endpoint, without looking up any object."""

from rest_framework.metadata import SimpleMetadata


class GatedMetadata(SimpleMetadata):
    """SimpleMetadata whose field lists need no object lookup (the gate already decided)."""

    def determine_actions(self, request, view):
        # DRF fetches the URL's object to decide whether to describe PUT; that would audit a
        # 404 for every OPTIONS on a detail path. The fields are public in the schema anyway.
        actions = {}
        described = view.action
        try:
            for method in sorted({"PUT", "POST"} & set(view.allowed_methods)):
                # The serializer of the action this method runs (create and update differ).
                view.action = view.action_map.get(method.lower())
                actions[method] = self.get_serializer_info(view.get_serializer())
        finally:
            view.action = described
        return actions
