"""Fair slots for the direct (queue=False) listeners, Generate's (rnnviz/app/guard/slots.py): at most
``slots`` calls run at once, and a client flooding them delays another client's call by at most one
call of its own per slot; a call that cannot get a slot in time is answered busy."""

import threading
import time

import pytest

from rnnviz.app.guard.base import Refused
from rnnviz.app.guard.slots import FairSlots


def run_calls(slots: FairSlots, plan: list[tuple[str, float]], hold_s: float = 0.05) -> list[str]:
    """Start a thread per (client, delay) of ``plan``; each holds a slot ``hold_s``. Returns the
    clients in the order their calls started."""
    started, lock, running, peak = [], threading.Lock(), [0], [0]

    def call(client, delay):
        time.sleep(delay)
        with slots.slot(client):
            with lock:
                started.append(client)
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(hold_s)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=call, args=c) for c in plan]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert peak[0] <= slots.slots
    return started


@pytest.mark.parametrize("n", [1, 2, 4])
def test_a_flood_delays_another_client_by_at_most_one_call_per_slot(n):
    slots = FairSlots(n)
    plan = [("flooder", 0.0)] * 12 + [("visitor", 0.02)]  # the visitor comes while 12 calls wait
    started = run_calls(slots, plan)
    ahead = started.index("visitor")
    # the flood holds at most half the slots (at least one): with two or more the visitor starts at
    # once; with one, after the call that was running when it came
    assert ahead <= max(1, n // 2), started


def test_one_client_holds_at_most_half_the_slots():
    peak, lock, running = [0], threading.Lock(), [0]
    slots = FairSlots(4)

    def call():
        with slots.slot("a"):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert peak[0] == 2


def test_waiting_clients_take_turns():
    started = run_calls(FairSlots(1), [("a", 0.0)] * 4 + [("b", 0.01)] * 4 + [("c", 0.01)] * 4)
    first_of = {c: started.index(c) for c in "abc"}
    assert max(first_of.values()) <= 3, started  # each client's first call is among the first few
    assert started[-3:] != ["a", "a", "a"] and started[-3:] != ["b", "b", "b"], started  # not one client's backlog last


def test_a_call_that_waits_too_long_is_busy_and_frees_its_place():
    slots = FairSlots(1, max_wait_s=0.1)
    hold = threading.Event()

    def long_call():
        with slots.slot("a"):
            hold.wait(5)

    th = threading.Thread(target=long_call)
    th.start()
    time.sleep(0.05)
    with pytest.raises(Refused) as got:
        with slots.slot("b"):
            pass
    assert got.value.status == 503 and "busy" in got.value.message
    hold.set()
    th.join(5)
    with slots.slot("b"):  # the refused call left no ghost behind
        pass
    with pytest.raises(ValueError):
        FairSlots(0)
