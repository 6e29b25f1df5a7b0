"""The OpenAPI schema validates without warnings and documents every operation's error answers."""

import yaml
from django.core.management import call_command

ERRORS = ("400", "401", "403", "404", "405", "409", "413", "503")


def test_schema_validates_and_documents_the_error_format(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    operations = [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 50
    for method, path, op in operations:
        for code in ERRORS:
            answer = op["responses"].get(code)
            assert answer, f"{method.upper()} {path} does not document {code}"
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (method, path, code)
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) >= {"code", "message"}
    # Actions that queue an Operation say so: 202 while pending, 200 after ?wait=.
    start = schema["paths"]["/api/v1/containers/{id}/start/"]["post"]
    assert {"200", "202"} <= set(start["responses"])
    assert any(p["name"] == "wait" for p in start["parameters"])
    assert "429" in schema["paths"]["/api/v1/hosts/join/"]["post"]["responses"]
