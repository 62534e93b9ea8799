"""WebSocket routes for Channels consumers (terminal, panels, events): none yet."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
