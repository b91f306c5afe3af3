"""Broker request sessions: concurrent handling, correlation ids, no-answer requests, shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from caudal.broker.sessions import Sessions


@dataclass
class Message:
    correlation_id: int
    delay_s: float = 0.0
    answered: bool = True


async def _requests(messages: list[Message], finished: asyncio.Event | None = None):
    for m in messages:
        yield m
    if finished is not None:
        await finished.wait()  # the client keeps the stream open


async def _echo(request: Message) -> Message | None:
    await asyncio.sleep(request.delay_s)
    return Message(0) if request.answered else None


def test_responses_carry_their_request_correlation_ids_in_completion_order():
    async def main():
        sessions = Sessions()
        requests = [Message(1, 0.05), Message(2, 0.0), Message(3, 0.02), Message(4, 0.0, answered=False)]
        return [r.correlation_id async for r in sessions.serve(_requests(requests), _echo)]

    assert asyncio.run(main()) == [2, 3, 1]  # a slow request holds up none behind it; 4 gets no answer


def test_close_answers_the_requests_in_flight_then_ends_the_session():
    async def main():
        sessions = Sessions()
        client_done = asyncio.Event()
        out = []

        async def consume():
            async for r in sessions.serve(_requests([Message(7, 0.05)], client_done), _echo):
                out.append(r.correlation_id)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.01)
        sessions.close()
        await asyncio.wait_for(task, 2)
        late = [r async for r in sessions.serve(_requests([Message(8)]), _echo)]
        return out, late

    out, late = asyncio.run(main())
    assert out == [7] and late == []  # after close, new sessions end at once


def test_a_failing_handler_ends_the_session_with_its_error():
    async def failing(request: Message) -> Message:
        raise ValueError("boom")

    async def main():
        return [r async for r in Sessions().serve(_requests([Message(1)]), failing)]

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(main())
