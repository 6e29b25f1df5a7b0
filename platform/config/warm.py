"""What every web worker would do on its first requests, done once before the workers fork."""

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.template import engines
from django.urls import get_resolver


def berth_templates() -> list[str]:
    """The names of Berth's own templates (the project's directory's, not the libraries')."""
    names = []
    for directory in settings.TEMPLATES[0]["DIRS"]:
        directory = Path(directory)
        names += [str(p.relative_to(directory)) for p in sorted(directory.rglob("*.html"))]
    return names


def warm() -> list[str]:
    """Import the URLconf and every view module it names, build its reverse map, compile
    Berth's templates and read the static files' manifest; returns the templates compiled.

    Django does all of it lazily, on a process's first request: about 0.4 s for the URLconf's
    imports and 60 ms for the first page's templates here (issue 15). Loaded in each
    worker, every worker paid it again, with its threads' first requests waiting behind the
    import lock: the slowest answers of a cold server. Done in the main process before the
    fork (config/http_server.py), the workers inherit it (and its gc.freeze keeps it out of
    their collections). No database connection is opened here: none may cross a fork.
    """
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 (imports the URLconf and its views)
    resolver.reverse_dict  # noqa: B018 (builds the reverse map {% url %} reads)
    engine = engines["django"]
    names = berth_templates()
    for name in names:
        engine.get_template(name)  # the cached loader keeps the compiled template
    staticfiles_storage.url  # noqa: B018 (instantiates the storage, which loads the manifest)
    return names
