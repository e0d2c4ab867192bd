import pytest

from tests.system.processes import ProcessGroup


@pytest.fixture
def processes(tmp_path, redis_client):
    group = ProcessGroup(tmp_path)
    yield group
    group.stop_all()
