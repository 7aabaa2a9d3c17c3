"""Helpers of the fault tests: a request the gateway dies on, and a writer held
at the proxy while requests queue behind it in a known order."""

import threading
import time
import uuid

import pytest

from harness.common import CONNECTION_ERRORS

def send_expecting_no_answer(gw, method, path, body):
    """The request must die with the gateway: no HTTP response at all."""
    try:
        r = gw.request(method, path, body=body, fresh=True)
    except CONNECTION_ERRORS:
        return
    pytest.fail(f"the gateway answered instead of dying: {r!r}\n{gw.log_tail()}")


class HeldWriter:
    """While open, the gateway's writer waits on a Neo4j request held at the
    proxy; requests sent meanwhile queue up and form the next group."""

    def __init__(self, gw, proxy):
        self.gw, self.proxy = gw, proxy
        self.marker = f"hold-{uuid.uuid4()}"
        self.answer = None

    def __enter__(self):
        self.proxy.hold_matching(self.marker.encode())
        body = {"id": self.marker, "type": "Blocker", "properties": {"marker": self.marker}}
        self.thread = threading.Thread(
            target=lambda: setattr(self, "answer", self.gw.request("POST", "/v1/entities", body=body,
                                                                   fresh=True, timeout=90)))
        self.thread.start()
        assert self.proxy.wait_held(1, timeout=30), "the blocker's Neo4j request was not held"
        return self

    def __exit__(self, *exc):
        self.proxy.stop_matching()
        self.proxy.release()
        self.thread.join(90)
        assert self.answer is not None and self.answer.status == 201, self.answer


def send_in_order(gw, requests, gap=0.3):
    """Sends (method, path, body, headers) requests from threads of their own,
    `gap` seconds apart so they queue in this order; returns the threads and
    the answers list they fill. (The writer's queue is not observable from
    outside: the gap orders arrival, it waits for nothing.)"""
    answers = [None] * len(requests)

    def one(i, method, path, body, headers):
        answers[i] = gw.request(method, path, body=body, headers=headers, fresh=True, timeout=90)

    threads = []
    for i, (method, path, body, headers) in enumerate(requests):
        t = threading.Thread(target=one, args=(i, method, path, body, headers))
        t.start()
        threads.append(t)
        time.sleep(gap)
    return threads, answers


def join_all(threads):
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a request never answered"
