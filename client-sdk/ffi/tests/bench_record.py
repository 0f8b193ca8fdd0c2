"""`patrolsync-bench ffi`'s Python side: record_checkin through the Python binding, beside the
same calls made natively by the Rust SDK in this process, on the same store.

Environment: BENCH_STATE (state dir), BENCH_CODE (enrollment string), BENCH_CALLS (per side),
BENCH_BLOCK (calls per alternation). Prints one JSON object.
"""

import asyncio
import json
import os
import time

import patrolsync_ffi as ps


async def main():
    calls = int(os.environ["BENCH_CALLS"])
    block = int(os.environ["BENCH_BLOCK"])
    client = await ps.PatrolClient.open(os.environ["BENCH_STATE"], ps.ClientOptions(), None, None)
    await client.enroll(os.environ["BENCH_CODE"], None, "bench")
    check_in = ps.CheckInInput(checkpoint="S1-C1-K1-B1-P1", outcome="inspected")
    # Warm both paths (the store's pages, the runtime's threads).
    for _ in range(20):
        await client.record_checkin(check_in)
    await client.record_checkins_natively(check_in, 20)
    python_ns, native_ns = [], []
    for _ in range(calls // block):
        started = time.perf_counter_ns()
        for _ in range(block):
            await client.record_checkin(check_in)
        python_ns.append(time.perf_counter_ns() - started)
        native_ns.append(await client.record_checkins_natively(check_in, block))
    # Where the binding's own time goes: lowering the record (a plain call that takes it), an
    # async call that does nothing on the library's runtime (await, hand-off, wake back), and
    # one that is ready at once (the await alone).
    started = time.perf_counter_ns()
    for _ in range(calls):
        client.accept_check_in(check_in)
    lowering_ns = (time.perf_counter_ns() - started) / calls
    started = time.perf_counter_ns()
    for _ in range(calls):
        await client.nothing_on_runtime()
    round_trip_ns = (time.perf_counter_ns() - started) / calls
    started = time.perf_counter_ns()
    for _ in range(calls):
        await client.nothing_at_once()
    await_ns = (time.perf_counter_ns() - started) / calls
    status = await client.status()
    print(json.dumps({"block": block, "python_ns": python_ns, "native_ns": native_ns,
                      "lowering_ns": lowering_ns, "async_round_trip_ns": round_trip_ns,
                      "async_ready_at_once_ns": await_ns,
                      "recorded": status.pending_ops}), flush=True)


asyncio.run(main())
# Straight out: the library's runtime threads may still be winding down, and an interpreter
# that finalises under them can abort the process after the results are out.
os._exit(0)
