import pytest

from tests.system.processes import ProcessGroup, RedisServer


@pytest.fixture
def processes(tmp_path, redis_client):
    group = ProcessGroup(tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
