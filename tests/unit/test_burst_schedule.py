"""mass-rebuild-burst, scheduling: LPT order, the lower bound, the simulation with builder
lifetimes, and the run-time queue (next free builder, retries elsewhere, deadline)."""
from __future__ import annotations

import itertools
import random
import threading

import pytest

from fedcloud_lib.burst.schedule import Job, WorkQueue, lower_bound, lpt_order, simulate

pytestmark = pytest.mark.unit


def jobs(*durations: float) -> list[Job]:
    return [Job(f"p{i}", d) for i, d in enumerate(durations)]


def optimum(durations: list[float], m: int) -> float:
    best = float("inf")
    for assign in itertools.product(range(m), repeat=len(durations)):
        loads = [0.0] * m
        for d, b in zip(durations, assign):
            loads[b] += d
        best = min(best, max(loads))
    return best


def test_lpt_order_is_longest_first_and_stable():
    order = lpt_order([Job("b", 5), Job("a", 5), Job("c", 9), Job("d", 1)])
    assert [j.name for j in order] == ["c", "a", "b", "d"]


def test_lower_bound():
    assert lower_bound([3, 3, 3, 3], 2) == 6
    assert lower_bound([10, 1, 1], 3) == 10
    assert lower_bound([], 4) == 0


def test_simulation_hands_each_package_to_the_next_free_builder():
    s = simulate(jobs(7, 5, 4, 3, 3, 2), 2)
    # LPT: b0: 7, 3, 2 (=12) / b1: 5, 4, 3 (=12)
    assert s.makespan_s == 12 and s.lower_bound_s == 12 and s.ratio == 1.0
    starts = {name: (slot, start) for name, slot, start, _ in s.assignments}
    assert starts["p0"] == (0, 0) and starts["p1"] == (1, 0) and starts["p2"] == (1, 5)


@pytest.mark.parametrize("seed", range(5))
def test_within_grahams_bound_of_the_optimum(seed):
    rnd = random.Random(seed)
    d = [rnd.randint(1, 20) for _ in range(8)]
    s = simulate(jobs(*d), 3)
    assert s.makespan_s <= (4 / 3 - 1 / 9) * optimum(d, 3) + 1e-9
    assert s.makespan_s >= s.lower_bound_s


def test_heavy_tail_is_close_to_the_lower_bound():
    rnd = random.Random(7)
    js = [Job(f"p{i}", rnd.lognormvariate(5.5, 1.3)) for i in range(2000)] + [Job("kernel", 30000)]
    for m in (5, 20, 80):
        s = simulate(js, m)
        assert s.ratio <= 1.02, (m, s.ratio)


def test_builders_are_replaced_at_the_end_of_their_life():
    # 10 packages of 1 h on 1 builder living 4 h with a 1.5 h timeout: a builder takes a
    # package only while now + timeout <= its end, so it does 3 and is replaced
    s = simulate(jobs(*[3600] * 10), 1, lifetime_s=4 * 3600, timeout_s=1.5 * 3600, boot_s=600)
    assert s.replacements == 3
    assert s.makespan_s == 10 * 3600 + 3 * 600
    slots = {slot for _, slot, _, _ in s.assignments}
    assert slots == {0, 1, 2, 3}
    for slot, _, born, retired in s.slots:
        assert retired - born <= 4 * 3600


def test_packages_longer_than_a_builder_lives_are_unplaceable():
    s = simulate(jobs(100, 5, 5), 2, lifetime_s=50, timeout_s=10)
    assert s.unplaceable == ("p0",) and s.total_s == 10


def test_queue_gives_the_longest_first_and_avoids_a_failed_builder():
    q = WorkQueue(jobs(1, 9, 5))
    a = q.take("b1", wait=0)
    assert a.name == "p1" and a.attempts == 1 and q.in_flight == 1
    q.put_back(a, avoid="b1")
    assert q.take("b1", wait=0).name == "p2"  # p1 is not given to b1 again
    again = q.take("b2", wait=0)
    assert again.name == "p1" and again.attempts == 2
    q.done(again)
    assert q.take("b1", wait=0).name == "p0"
    assert q.take("b2", wait=0) is None and not q.finished


def test_queue_fits_and_drop_all():
    q = WorkQueue(jobs(3, 2, 1))
    assert q.take("b", wait=0, fits=lambda item: item.expected_s < 3).name == "p1"
    assert [i.name for i in q.drop_all()] == ["p0", "p2"]
    assert len(q) == 0 and q.in_flight == 1


def test_queue_blocks_while_work_may_come_back():
    q = WorkQueue(jobs(4))
    item = q.take("b1", wait=0)
    got = []
    t = threading.Thread(target=lambda: got.append(q.take("b2")))
    t.start()
    q.put_back(item, avoid="b1")
    t.join(timeout=5)
    assert got and got[0].name == "p0"
    q.done(got[0])
    assert q.finished and q.take("b3") is None
