"""Capture delivery: batching, retries, failure counting; never an exception on the request path."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.capture_format import request_record
from driftline.serving.capture import (
    BATCH_ROWS,
    MAX_RECORD_BYTES,
    SOLO_LINE_BYTES,
    CaptureWriter,
    FirehoseSink,
    batch_body,
)


def record(i: int, model: str = "m", version: int = 1, rows: int = 1) -> dict[str, Any]:
    """A v2 capture record of request ``r<i>`` with ``rows`` rows."""
    return request_record(
        request_id=f"r{i}",
        model=model,
        version=version,
        role="champion",
        ts="t",
        latency_ms=0.1,
        rows=[{"x": i, "k": k} for k in range(rows)],
        outputs=[{"value": float(i)} for _ in range(rows)],
    )


class FakeFirehose:
    """put_record_batch that can reject chosen records (by request id) on the first attempt."""

    def __init__(
        self, reject_once: set[str] | None = None, reject_always: set[str] | None = None, fail: Exception | None = None
    ) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.reject_once = set(reject_once or ())
        self.reject_always = set(reject_always or ())
        self.fail = fail

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        if self.fail:
            raise self.fail
        self.calls.append((DeliveryStreamName, [r["Data"] for r in Records]))
        out = []
        for r in Records:
            rids = {json.loads(line)["request_id"] for line in r["Data"].splitlines()}
            if rids & (self.reject_always | self.reject_once):
                self.reject_once -= rids
                out.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"})
            else:
                out.append({"RecordId": "x"})
        return {"FailedPutCount": sum("ErrorCode" in o for o in out), "RequestResponses": out}


def sent_lines(fh: FakeFirehose) -> int:
    return sum(len(d.splitlines()) for _, data in fh.calls for d in data)


def lines_of(n: int) -> list[bytes]:
    return [json.dumps(record(i)).encode() + b"\n" for i in range(n)]


def test_sink_packs_lines_into_few_records_with_identical_bytes() -> None:
    fh = FakeFirehose()
    sink = FirehoseSink("dev-driftline-captures-", client=lambda: fh)
    lines = lines_of(1234)
    assert all(sink.send("m", lines))
    assert len(fh.calls) == 1 and len(fh.calls[0][1]) == 1  # ~0.2 MB: one record, one call
    assert fh.calls[0][0] == "dev-driftline-captures-m"
    assert b"".join(fh.calls[0][1]) == b"".join(lines)


def test_sink_splits_calls_at_500_records() -> None:
    fh = FakeFirehose()
    sink = FirehoseSink("p-", client=lambda: fh, pack_bytes=1)  # one line per record
    lines = lines_of(1234)
    assert all(sink.send("m", lines))
    assert [len(c[1]) for c in fh.calls] == [500, 500, 234]
    assert [d for c in fh.calls for d in c[1]] == lines


def test_sink_retries_rejected_records_once() -> None:
    fh = FakeFirehose(reject_once={"r3"}, reject_always={"r5"})
    sink = FirehoseSink("p-", client=lambda: fh, pack_bytes=1)
    ok = sink.send("m", lines_of(8))
    assert ok == [True] * 5 + [False] + [True] * 2
    assert len(fh.calls) == 2 and len(fh.calls[1][1]) == 2
    packed = FakeFirehose(reject_always={"r5"})
    ok = FirehoseSink("p-", client=lambda: packed, pack_bytes=3 * len(lines_of(1)[0])).send("m", lines_of(8))
    assert ok == [True] * 3 + [False] * 3 + [True] * 2  # the whole pack holding r5 failed


def test_sync_writer_delivers_before_returning_and_counts_failures() -> None:
    fh = FakeFirehose(reject_always={"r1"})
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh, pack_bytes=1), mode="sync")
    w.submit([record(0), record(1, version=2), record(2, model="other")])
    assert sorted(c[0] for c in fh.calls) == ["p-m", "p-m", "p-other"]  # r1 retried once
    assert w.sent == 2
    assert w.drain_failures() == {("m", 2): 1}
    assert w.drain_failures() == {}


def test_a_broken_sink_never_raises_and_is_counted() -> None:
    w = CaptureWriter(FirehoseSink("p-", client=lambda: FakeFirehose(fail=RuntimeError("no network"))), mode="sync")
    w.submit([record(0), record(1)])
    assert w.drain_failures() == {("m", 1): 2}


def test_background_writer_batches_and_flushes_after_linger() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh), linger_s=0.2)
    t0 = time.monotonic()
    for i in range(5):
        w.submit([record(i)])
    assert fh.calls == []  # nothing sent on the request path
    while not fh.calls and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert len(fh.calls) == 1 and sent_lines(fh) == 5
    assert time.monotonic() - t0 >= 0.2
    assert w.pending() == 0


def test_background_writer_sends_full_batches_without_waiting() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh), linger_s=60)
    w.submit([record(i) for i in range(BATCH_ROWS)])
    t0 = time.monotonic()
    while not fh.calls and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert sent_lines(fh) == BATCH_ROWS


def test_flush_delivers_everything_now() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh), linger_s=60)
    w.submit([record(i) for i in range(7)])
    w.flush()
    assert sent_lines(fh) == 7 and w.sent == 7


class Gated:
    """A sink that holds the background thread's first delivery until released, and records which
    thread delivered what."""

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.fail = fail
        self.by_thread: dict[str, int] = {}

    def send(self, model: str, lines: Sequence[bytes]) -> list[bool]:
        name = threading.current_thread().name
        if name == "driftline-capture":
            self.release.wait(5)
        self.by_thread[name] = self.by_thread.get(name, 0) + len(lines)
        if self.fail:
            raise RuntimeError("stream unavailable")
        return [True] * len(lines)


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.005)


def test_full_buffer_makes_the_request_deliver_and_loses_nothing() -> None:
    sink = Gated()
    w = CaptureWriter(sink, linger_s=0.05, max_buffer=10)
    w.submit([record(i) for i in range(3)])
    wait_for(lambda: w.pending() == 0)  # the thread took those 3 and is stuck sending them
    w.submit([record(i) for i in range(3, 9)])
    assert sink.by_thread == {} and w.pending() == 6
    # 12 >= 10: this request sends a batch itself, once the delivery in flight is done (backpressure)
    request = threading.Thread(target=w.submit, args=([record(i) for i in range(9, 15)],), name="request")
    request.start()
    request.join(0.2)
    assert request.is_alive() and sink.by_thread == {}
    sink.release.set()
    request.join(5)
    assert sink.by_thread == {"driftline-capture": 3, "request": 12}
    assert w.pending() == 0 and w.sent == 15 and w.drain_failures() == {}


def test_full_buffer_while_deliveries_fail_drops_oldest_and_counts_them() -> None:
    sink = Gated(fail=True)
    sink.release.set()
    w = CaptureWriter(sink, linger_s=0.01, max_buffer=10)
    w.submit([record(0)])
    wait_for(lambda: w.drain_failures() == {("m", 1): 1})  # the stream is down
    sink.release.clear()
    w.submit([record(1, version=2)])
    wait_for(lambda: w.pending() == 0)  # taken by the (now held) thread
    w.submit([record(i, version=3) for i in range(15)])
    assert "MainThread" not in sink.by_thread  # an outage must not stall the request (nor block it)
    assert w.pending() == 10 and w.drain_failures() == {("m", 3): 5}
    sink.release.set()


def test_the_thread_survives_an_unexpected_error() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh), linger_s=0.02)
    w.submit([{"no": "model key"}])  # a programming error: logged and counted, never raised
    assert w.pending() == 0 and w.drain_failures() == {("None", 0): 1}
    w.submit([record(i) for i in range(3)])
    wait_for(lambda: w.sent == 3)
    assert w._thread is not None and w._thread.is_alive()


def test_a_request_larger_than_a_delivery_is_split_in_order() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh, pack_bytes=1), linger_s=60)
    w.submit([record(i) for i in range(3)])
    w.submit([record(i) for i in range(3, 10)])
    assert w.pending() == 10
    assert [r.request_id for r in w._take(5, deliver=False)] == [f"r{i}" for i in range(5)]
    assert w.pending() == 5
    w.flush()
    assert [json.loads(d)["request_id"] for _, data in fh.calls for d in data] == [f"r{i}" for i in range(5, 10)]
    assert w.pending() == 0


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), max_size=60), pack=st.integers(1, 100))
def test_packs_are_greedy_consecutive_and_bounded(sizes: list[int], pack: int) -> None:
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(sizes)]
    packs = FirehoseSink("p-", client=lambda: None, pack_bytes=pack)._packs(lines)
    assert [i for _, idx in packs for i in idx] == list(range(len(lines)))
    for data, idx in packs:
        assert data == b"".join(lines[i] for i in idx)
        assert len(data) <= pack or len(idx) == 1
    for (_, idx), (_, nxt) in pairwise(packs):  # greedy: the next line did not fit
        assert sum(len(lines[i]) for i in idx) + len(lines[nxt[0]]) > pack


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="CAPTURE_MODE"):
        CaptureWriter(FirehoseSink("p-"), mode="async")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self.body


def wire_client(sent: list[bytes]) -> Any:
    """A real botocore Firehose client whose HTTP layer records each request body and answers OK."""
    import botocore.session
    from botocore.awsrequest import AWSResponse

    client = botocore.session.get_session().create_client(
        "firehose", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request.body)
        n = len(json.loads(request.body)["Records"])
        payload = json.dumps({"FailedPutCount": 0, "RequestResponses": [{"RecordId": str(i)} for i in range(n)]})
        return AWSResponse(request.url, 200, {}, _Raw(payload.encode()))

    client.meta.events.register("before-send.firehose.PutRecordBatch", answer)
    return client


def test_the_prebuilt_body_is_the_request_botocore_would_send() -> None:
    sent: list[bytes] = []
    client = wire_client(sent)
    lines = [json.dumps({"request_id": f"r{i}", "s": 'é"\\\n\u2028'}).encode() + b"\n" for i in range(50)]
    sink = FirehoseSink("dev-captures-", client=lambda: client, pack_bytes=400)
    assert all(sink.send("credit-default", lines))
    sink.send("credit-default", lines[:3])
    assert len(sent) == 2
    body = json.loads(sent[0])
    assert body["DeliveryStreamName"] == "dev-captures-credit-default"  # never the placeholder
    packs = [base64.b64decode(r["Data"]) for r in body["Records"]]
    assert len(packs) > 1 and b"".join(packs) == b"".join(lines)
    # the same JSON botocore itself serializes for the real parameters
    own: list[bytes] = []
    plain = wire_client(own)
    plain.put_record_batch(DeliveryStreamName="dev-captures-credit-default", Records=[{"Data": p} for p in packs])
    assert json.loads(own[0]) == body


def test_without_the_swap_the_call_names_no_real_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline.serving.capture as capture

    sent: list[bytes] = []
    client = wire_client(sent)
    monkeypatch.setattr(capture, "_swap_in_body", lambda params, **kwargs: None)
    FirehoseSink("p-", client=lambda: client).send("m", lines_of(3))
    body = json.loads(sent[0])
    assert body["DeliveryStreamName"] == capture._PLACEHOLDER_STREAM and body["Records"] == [{"Data": ""}]


def test_flush_waits_for_the_delivery_the_thread_has_in_flight() -> None:
    sink = Gated()
    w = CaptureWriter(sink, linger_s=0.01)
    w.submit([record(0, rows=3)])
    wait_for(lambda: w.pending() == 0)  # the thread took the record and is held in its delivery
    done = threading.Thread(target=w.flush, name="flusher")
    done.start()
    done.join(0.2)
    assert done.is_alive() and w.sent == 0  # shutdown must not return before that record is sent
    sink.release.set()
    done.join(5)
    assert not done.is_alive() and w.sent == 1 and w._in_flight == 0


def test_the_buffer_counts_rows_not_records() -> None:
    w = CaptureWriter(Gated(), linger_s=60, max_buffer=10_000)
    w.submit([record(0, rows=100), record(0, rows=100)])  # one request, champion and shadow
    assert w.pending() == 200
    assert len(w._take(150, deliver=False)) == 2 and w.pending() == 0  # a record is never cut


def test_the_buffer_holds_the_encoded_line_not_the_request_objects() -> None:
    w = CaptureWriter(Gated(), linger_s=60)
    rec = record(4, rows=3)
    w.submit([rec])
    rec["rows"].append({"x": "changed after submit"})  # the request's objects are no longer read
    (entry,) = w._take(10, deliver=False)
    assert type(entry.line) is bytes and entry.line.endswith(b"\n") and entry.line.count(b"\n") == 1
    assert json.loads(entry.line)["cols"] == {"x": [4, 4, 4], "k": [0, 1, 2]}  # v3: the rows by column
    assert (entry.model, entry.version, entry.request_id, entry.rows) == ("m", 1, "r4", 3)


def test_a_record_with_a_wrong_version_type_is_counted_not_raised() -> None:
    fh = FakeFirehose()
    w = CaptureWriter(FirehoseSink("p-", client=lambda: fh), mode="sync")
    bad = {**record(0), "version": "3"}
    w.submit([bad, record(1)])
    assert w.sent == 1 and w.drain_failures() == {("m", 0): 1} and sent_lines(fh) == 1


@settings(max_examples=100, deadline=None)
@given(
    datas=st.lists(st.binary(max_size=300), max_size=8), stream=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
)
def test_the_body_is_the_json_botocore_serializes(datas: list[bytes], stream: str) -> None:
    expected = {"DeliveryStreamName": stream, "Records": [{"Data": base64.b64encode(d).decode()} for d in datas]}
    assert json.loads(batch_body(stream, datas)) == expected


def test_long_lines_are_records_of_their_own_and_are_not_copied() -> None:
    big = [bytes([65 + i]) * SOLO_LINE_BYTES for i in range(3)]
    small = [b"s" * 10 for _ in range(4)]
    lines = [small[0], small[1], big[0], big[1], small[2], big[2], small[3]]
    packs = FirehoseSink("p-", client=lambda: None, pack_bytes=MAX_RECORD_BYTES)._packs(lines)
    assert [idx for _, idx in packs] == [[0, 1], [2], [3], [4], [5], [6]]
    assert all(data is lines[idx[0]] for data, idx in packs if len(idx) == 1 and len(data) >= SOLO_LINE_BYTES)
    assert b"".join(data for data, _ in packs) == b"".join(lines)
