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
    status = await client.status()
    print(json.dumps({"block": block, "python_ns": python_ns, "native_ns": native_ns,
                      "recorded": status.pending_ops}))


asyncio.run(main())
