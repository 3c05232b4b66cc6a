"""Work written as steps: a generator that yields what it waits for, so one thread can run many.

A check run is a generator: it starts a child (`ModuleRunner.start`) and
yields the `Running` handle; whoever drives it sends back the child's
`ProcessOutcome` once the run is over, and the generator goes on to parse
and record. `drive()` is the plain driver, one step after another on the
calling thread (`survivor check`, tests, alert work). The check pool's loop
(`survivor.work.loop`) drives many generators from one poll set instead, so
that one Python thread does the work of many checks without a thread
hand-off per check.

A step that can only block (a composite check's components running
together, Type II dependencies run first) is yielded as `Offload(fn)`: the
loop runs `fn` on a thread of its own and sends back its return value.
`PAUSE` lets the loop serve the other items before this one goes on.
`Await(future)` waits for an answer that another thread will give (a remote
worker's reply, survivor.work.remote): the loop goes on with the others and
takes the item up again when the future is done, with no thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from survivor.proc.runner import Running
from survivor.proc.session import ProcessOutcome

T = TypeVar("T")


@dataclass(slots=True)
class Offload(Generic[T]):
    """A step that blocks: run `fn` elsewhere and send back what it returns."""

    fn: Callable[[], T]


@dataclass(slots=True)
class Await(Generic[T]):
    """A step that waits for `future`, done by another thread: send back its result."""

    future: Future[T]


class Pause:
    """A step that waits for nothing: the loop serves the other items, then goes on with this
    one (a batch of thousands of results is recorded in slices, not in one go)."""

    __slots__ = ()


PAUSE = Pause()

Step = Running | Offload[Any] | Await[Any] | Pause
Steps = Generator[Step, Any, T]  # yields steps, is sent their results, returns T


def run_step(step: Step) -> Any:
    """One step, on this thread: wait for the run, or call the offloaded function."""
    if isinstance(step, Offload):
        return step.fn()
    if isinstance(step, Pause):
        return None
    if isinstance(step, Await):
        return step.future.result()
    return step.wait()


def drive(steps: Steps[T]) -> T:
    """Run `steps` to the end on this thread; an error in a step is raised inside the generator
    (where the code that yielded it can handle it, as if it had called it)."""
    send: Callable[[Any], Step] = steps.send
    value: Any = None
    while True:
        try:
            step = send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value, send = run_step(step), steps.send
        except BaseException as err:
            value, send = err, steps.throw


def outcome_of(running: Running) -> Steps[ProcessOutcome]:
    """`outcome = yield from outcome_of(runner.start(...))`: a run as a step."""
    outcome: ProcessOutcome = yield running
    return outcome
