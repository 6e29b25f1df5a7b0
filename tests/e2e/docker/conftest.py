"""The Docker API's end-to-end modules share one served Berth for the whole session.

Starting a stack (migrations, bootstrap, web, agent, listener) costs about a minute on this
machine; the modules here (the docker CLI, compose and SDK against Berth) only need one, so
`stack`, `web`, `listener` and `dock` are session-scoped in this directory. Their tests use
names of their own and remove what they make.
"""

import pytest

from tests.e2e.conftest import docker_cli, docker_listener, running_stack


@pytest.fixture(scope="session")
def stack(redis_url):
    """One Berth (web server, agent) for every Docker API module."""
    with running_stack(redis_url) as made:
        yield made


@pytest.fixture(scope="session")
def web(stack):
    """The shared stack with its web server running."""
    if stack.web is None:
        stack.start_web()
    return stack


@pytest.fixture(scope="session")
def listener(web):
    """The shared stack's Docker API listener (its port)."""
    with docker_listener(web) as port:
        yield port


@pytest.fixture(scope="session")
def dock(web, listener, tmp_path_factory):
    """The docker CLI as a developer of team e2e against the shared stack."""
    return docker_cli(web, listener, tmp_path_factory.mktemp("docker-config"))
