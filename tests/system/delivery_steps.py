"""Loaded into a test's delivery workers with `celery worker --include tests.system.delivery_steps`
(imported by the main process before it forks its pool): every execution of a step is counted in
Redis (outside any transaction, so an execution cut short by a kill counts too), and a test can make a step slow or fail permanently through Redis keys, without restarting a worker."""
from __future__ import annotations

import time
from dataclasses import replace

from delivery import steps
from workers.errors import PermanentError
from workers.redis_client import shared_client

SLOW = "resilience:test:delivery:slow"  # hash: step name -> seconds its call sleeps
FAIL = "resilience:test:delivery:fail"  # set of step names whose call fails permanently


def executions_key(run_id: int, name: str) -> str:
    return f"resilience:test:delivery:executions:{run_id}:{name}"


def executions(run_id: int) -> dict[str, int]:
    client = shared_client()
    return {step.name: int(client.get(executions_key(run_id, step.name)) or 0) for step in steps.STEPS}


def _counted(step: steps.Step) -> steps.Step:
    def call(ctx: steps.StepContext) -> dict:
        client = shared_client()
        client.incr(executions_key(ctx.run_id, step.name))
        client.expire(executions_key(ctx.run_id, step.name), 3600)
        if client.sismember(FAIL, step.name):
            raise PermanentError(f"{step.name} was told to fail")
        time.sleep(float(client.hget(SLOW, step.name) or 0))
        return step.call(ctx) if step.call else {}

    return replace(step, call=call)


steps.STEPS = tuple(_counted(step) for step in steps.STEPS)
