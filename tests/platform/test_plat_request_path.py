"""The API request's shortcuts (issue 19) give what the general way gives: the dashboard's
middleware skipped for token requests, the quick content negotiation, the audit row's
parameters, request ids, and the Authorization header read from META."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import Http404
from django.test import RequestFactory, override_settings
from django.utils import timezone
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIClient

from accounts.models import ApiToken
from api.negotiation import QuickContentNegotiation
from api.renderers import FastJSONRenderer
from audit import context
from audit.models import AuditEvent
from audit.services import _FIELDS, _parameters
from config.dashboard_middleware import DashboardMiddleware, needs_dashboard

pytestmark = pytest.mark.django_db


def _bearer(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user, 'tp-path')[1]}")
    return client


# --- the dashboard's middleware -------------------------------------------------------------


def test_only_api_requests_without_a_session_cookie_skip_the_dashboards_middleware(settings):
    factory = RequestFactory()
    assert not needs_dashboard(factory.get("/api/v1/containers/"))
    assert not needs_dashboard(factory.get("/v1.43/containers/json"))
    assert not needs_dashboard(factory.get("/_ping"))
    assert needs_dashboard(factory.get("/v1/containers/json"))  # not a Docker API path
    assert needs_dashboard(factory.get("/containers/"))
    assert needs_dashboard(factory.get("/login/"))
    with_cookie = factory.get("/api/v1/containers/")
    with_cookie.COOKIES[settings.SESSION_COOKIE_NAME] = "anything"
    assert needs_dashboard(with_cookie)


def test_a_token_request_gets_no_session_and_sets_no_cookie(users):
    response = _bearer(users["developer"]).get("/api/v1/containers/")
    assert response.status_code == 200
    assert not hasattr(response.wsgi_request, "session")
    assert not response.cookies
    assert response["X-Frame-Options"] == "DENY"  # outside the group: every answer has it


def test_the_dashboards_own_api_calls_still_authenticate_with_the_session(users):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["developer"])
    response = client.get("/api/v1/containers/")
    assert response.status_code == 200
    assert response.wsgi_request.session.session_key
    # The session's writes still need the CSRF token.
    assert client.post("/api/v1/tokens/", {"name": "tp-x"}, format="json").status_code == 403


def test_no_cookie_and_no_token_is_refused(users):
    assert APIClient().get("/api/v1/containers/").status_code in (401, 403)


def test_the_dashboard_pages_keep_their_session_and_messages(users, client):
    client.force_login(users["developer"])
    response = client.get("/")
    assert response.status_code == 200
    assert response.wsgi_request.user == users["developer"]
    assert hasattr(response.wsgi_request, "_messages")


class _WithViewHook:
    def __init__(self, get_response):
        self.get_response = get_response

    def process_view(self, request, view, args, kwargs):
        return None


def test_a_middleware_with_a_view_hook_cannot_join_the_group():
    path = f"{__name__}._WithViewHook"
    with (
        override_settings(BERTH_DASHBOARD_MIDDLEWARE=[path]),
        pytest.raises(ImproperlyConfigured, match="process_view"),
    ):
        DashboardMiddleware(lambda request: None)


# --- content negotiation --------------------------------------------------------------------

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "text/html, */*;q=0.1",
    "image/png",
    "",
]
RENDERER_LISTS = [
    [FastJSONRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer()],
    [TemplateHTMLRenderer(), FastJSONRenderer()],
]


def _choice(negotiator, accept, renderers, query=""):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/api/v1/containers/{query}", **headers))
    try:
        renderer, media_type = negotiator.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    except Http404:  # a ?format= no renderer has
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderers", RENDERER_LISTS, ids=["json", "json+html", "html+json"])
@pytest.mark.parametrize("query", ["", "?format=api", "?format=json"])
def test_the_quick_negotiation_chooses_what_drf_chooses(accept, renderers, query):
    quick = _choice(QuickContentNegotiation(), accept, renderers, query)
    assert quick == _choice(DefaultContentNegotiation(), accept, renderers, query)


# --- the audit row's parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"actor_id": 7, "actor": "dev", "source_ip": "10.0.0.1", "operation_id": 12},
        {"actor_id": None, "actor": "", "source_ip": None, "operation_id": None},
        {"actor": "dév ☃", "source_ip": "", "object_id": "x" * 64},
        {"source_ip": "::ffff:10.1.2.3", "summary": {"a": [1, "b"], "c": None}},
        # Not what record_event writes, but whatever comes goes through the field.
        {"actor_id": "42", "operation_id": True, "object_id": 5},
    ],
)
@pytest.mark.parametrize(
    "when",
    [
        lambda: timezone.now(),  # what record_event writes
        lambda: timezone.now().astimezone(ZoneInfo("Europe/Paris")),
        lambda: timezone.now().replace(microsecond=0),
        lambda: datetime(2026, 12, 7, 3, 0, tzinfo=UTC),
    ],
    ids=["utc-now", "paris", "whole-second", "fixed"],
)
@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's append only (PostgreSQL's is audit.sql's)"
)
def test_the_audit_rows_parameters_are_what_the_fields_prepare(values, when):
    event = AuditEvent(seq=1, time=when(), action="container.list", outcome="allowed", **values)
    expected = [f.get_db_prep_save(getattr(event, f.attname), connection) for f in _FIELDS]
    assert _parameters(event, connection) == expected


# --- request ids and the Authorization header -----------------------------------------------


def test_a_request_id_is_made_only_when_none_is_given(monkeypatch):
    made = context.new_request_id()
    assert len(made) == 32 and int(made, 16) >= 0 and made != context.new_request_id()
    with context.bind() as bound:
        assert len(bound.request_id) == 32
    monkeypatch.setattr(context, "new_request_id", lambda: pytest.fail("made one anyway"))
    with context.bind(request_id="given") as bound:
        assert bound.request_id == "given"


def test_a_request_id_header_is_echoed_and_a_bad_one_replaced(users):
    client = _bearer(users["developer"])
    assert client.get("/api/v1/containers/", HTTP_X_REQUEST_ID="r-1")["X-Request-ID"] == "r-1"
    made = client.get("/api/v1/containers/", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert made != "bad id\n" and len(made) == 32


@pytest.mark.parametrize(
    "header, status",
    [("Bearer {secret}", 200), ("bearer {secret}", 200), ("Bearer", 401),
     ("Bearer {secret} extra", 401), ("Token {secret}", 401)],
)  # fmt: skip
def test_the_authorization_header_is_read_as_drf_reads_it(users, header, status):
    _, secret = ApiToken.issue(users["developer"], "tp-hdr")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(secret=secret))
    assert client.get("/api/v1/containers/").status_code in (
        (status,) if status == 200 else (401, 403)
    )
