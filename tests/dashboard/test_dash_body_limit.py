"""A dashboard form posted with a body over the limit is a 413 naming the limit (issue 22)."""

from django.test import Client


def test_an_oversized_form_is_a_413_not_a_400(login, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    client = login("admin")
    response = client.post("/containers/new/", {"name": "x", "command": "a" * 4096})
    assert response.status_code == 413
    assert b"too large" in response.content and b"MiB" in response.content


def test_the_csrf_middleware_reading_the_body_also_answers_413(users, settings):
    # With CSRF enforced the middleware reads the body first, before any view runs.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    client.get("/containers/new/")  # the page sets the CSRF cookie, as in a browser
    token = client.cookies["csrftoken"].value
    form = {"csrfmiddlewaretoken": token, "name": "x", "command": "a" * 4096}
    response = client.post("/containers/new/", form)
    assert response.status_code == 413


def test_a_small_malformed_request_is_still_a_400(login, settings):
    client = login("admin")
    fields = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.post(
        "/containers/new/", fields, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
