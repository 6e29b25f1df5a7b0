"""WebSocket routes of the dashboard (mounted by config.asgi)."""

from django.urls import path

from dashboard.consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/containers/<int:pk>/terminal/", TerminalConsumer.as_asgi()),
]
