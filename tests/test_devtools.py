"""The development commands erase and flood only what bin/bench made for them."""

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from devtools.scratch import REDIS_CLAIM_KEY, scratch_redis_require
from execution.models import Task
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("command", ["bench", "bench_load", "lab_history"])
def test_a_development_command_refuses_a_database_bin_bench_did_not_make(command):
    TaskFactory()
    with pytest.raises(CommandError, match="not a scratch database"):
        call_command(command)
    assert Task.objects.count() == 1


def test_the_benchmark_refuses_a_redis_db_bin_bench_did_not_claim():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(REDIS_CLAIM_KEY)
    with pytest.raises(CommandError, match="not claimed by bin/bench"):
        scratch_redis_require(client)
