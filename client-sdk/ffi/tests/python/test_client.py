"""The SDK through its Python bindings, end to end against a real server.

Each test drives the generated `patrolsync_ffi` module as an app would: open, enroll, record
offline, sync, read back, and checks on the server (with its admin command line) what arrived.
"""

import asyncio
import contextlib
import threading

import pytest

import patrolsync_ffi as ps

# The demo grid's cell for alice, and 40 of its checkpoints.
CELL = "S1-C1"
CHECKPOINTS = [f"S1-C1-K{k}-B{b}-P{p}" for k in range(1, 5) for b in range(1, 6) for p in (1, 2)]


class Recorder(ps.SyncListener):
    """A listener that keeps what it hears (called on a library thread)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        self.states = []

    def on_event(self, event):
        with self.lock:
            self.events.append(event)

    def on_state(self, state):
        with self.lock:
            self.states.append(state)

    def phases(self):
        with self.lock:
            return [s.phase for s in self.states]


@contextlib.contextmanager
def listening(client):
    """A Recorder registered on `client`, cleared on the way out (a library thread must not
    call into an interpreter that is shutting down)."""
    listener = Recorder()
    client.set_listener(listener)
    try:
        yield listener
    finally:
        client.clear_listener()


async def enrolled(server, tmp_path, name="alice", language="zh-CN", role="patroller"):
    client = await ps.PatrolClient.open(
        str(tmp_path / f"{name}-phone"), ps.ClientOptions(language=language), None, None)
    code = server.enrollment_code(name, role, CELL)
    enrollment = await client.enroll(code, None, f"{name}'s phone")
    assert enrollment.grid_cells == [CELL]
    assert enrollment.role == role
    return client


def checkin(checkpoint, **kw):
    return ps.CheckInInput(checkpoint=checkpoint, outcome="inspected", **kw)


def drive(test):
    """Runs an async test body with an ExitStack for what must be undone before the loop
    closes."""
    async def main():
        with contextlib.ExitStack() as stack:
            await test(stack)
    asyncio.run(main())


async def wait_for(predicate, what, bound=10.0):
    """Polls `predicate` (the bound only keeps a broken build from hanging)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def test_offline_check_ins_arrive_once_and_a_hazard_folds(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)
        listener = stack.enter_context(listening(client))

        # 100 check-ins with no sync: each is in the outbox when the call returns.
        ids = [await client.record_checkin(checkin(CHECKPOINTS[i % len(CHECKPOINTS)]))
               for i in range(100)]
        assert len(set(ids)) == 100
        status = await client.status()
        assert status.pending_ops == 100
        assert server.admin_json("stats")["check_ins"] == 0

        summary = await client.sync()
        assert (summary.applied, summary.rejected, summary.remaining) == (100, 0, 0)
        # On the server: 100 check-ins, exactly these.
        assert server.admin_json("stats")["check_ins"] == 100
        stored = server.admin_json("check-ins", "--limit", "1000")
        assert sorted(c["id"] for c in stored) == sorted(ids)
        # Syncing again sends nothing and changes nothing.
        again = await client.sync()
        assert again.pushed == 0
        assert server.admin_json("stats")["check_ins"] == 100

        # The listener heard both syncs: each state change (push before pull before photos,
        # back to idle, connected) and the events, in order.
        await wait_for(lambda: sum(isinstance(e, ps.SyncEvent.FINISHED)
                                   for e in list(listener.events)) == 2, "two syncs heard")
        phases = listener.phases()
        seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
        one_sync = [ps.SyncPhase.PUSH, ps.SyncPhase.PULL, ps.SyncPhase.PHOTOS, ps.SyncPhase.IDLE]
        assert seen == [ps.SyncPhase.IDLE] + one_sync + one_sync, seen
        assert client.state().connectivity == ps.Connectivity.CONNECTED
        assert client.state().has_synced
        with listener.lock:
            events = [e for e in listener.events if not isinstance(e, ps.SyncEvent.DATA_CHANGED)]
        # The first sync brought alice's cell into scope; the second had nothing to do.
        E = ps.SyncEvent
        assert [type(e) for e in events] == [E.STARTED, E.SCOPE_CHANGED, E.FINISHED,
                                             E.STARTED, E.FINISHED], events
        assert events[1].change.granted and events[1].change.id == CELL
        assert events[2].summary.applied == 100

        # A hazard, reported offline, folds on the device and reaches the server.
        hazard = await client.report_hazard(ps.HazardInput(
            grid_cell="S1-C1-K2", category="blocked_fire_lane",
            description="电动车堵塞消防通道", checkpoint="S1-C1-K2-B1-P1"))
        local = await client.hazard(hazard)
        assert local.status == "reported" and local.has_local_changes
        await client.sync()
        view = await client.hazard(hazard)
        assert view.id == hazard
        assert (view.status, view.category, view.grid_cell) == (
            "reported", "blocked_fire_lane", "S1-C1-K2")
        assert view.description == "电动车堵塞消防通道"
        assert not view.has_local_changes
        assert server.admin_json("stats")["hazards"] == 1
        assert [h.id for h in await client.hazards()] == [hazard]
        # The pull brought the cell's checkpoints with position and radius.
        cps = await client.checkpoints()
        assert len(cps) == len(CHECKPOINTS)
        assert all(c.cell.startswith(CELL) and c.radius_m > 0 for c in cps)

    drive(run)


def test_errors_are_typed_codes_with_parameters_and_chinese_messages(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)

        # Refused locally, before anything is queued: a typed error, raised.
        with pytest.raises(ps.PatrolError.Failed) as refused:
            await client.record_checkin(checkin(CHECKPOINTS[0], note="x" * 5000))
        assert refused.value.code == ps.ErrorCode.TOO_LONG(field="note", max=4096)
        assert refused.value.text == "内容过长：note 最多 4096 个字"
        assert not refused.value.retryable
        with pytest.raises(ps.PatrolError.Failed) as unknown:
            await client.record_checkin(ps.CheckInInput(checkpoint=CHECKPOINTS[0],
                                                        outcome="asleep"))
        assert unknown.value.code == ps.ErrorCode.INVALID(field="outcome",
                                                          reason="unknown_value")
        assert (await client.status()).pending_ops == 0

        # Refused by the server: a check-in outside alice's cells comes back as a rejected op
        # with its code, what it named, and the message in her language.
        await client.record_checkin(checkin("S2-C1-K1-B1-P1"))
        summary = await client.sync()
        assert summary.rejected == 1
        [op] = await client.rejected()
        assert op.kind == "check_in"
        assert op.error.code == ps.ErrorCode.OUTSIDE_SCOPE(field="checkpoint",
                                                           value="S2-C1-K1-B1-P1")
        assert op.error.message == "该检查点不在您负责的网格内（S2-C1-K1-B1-P1）"
        # The same code renders in English on request.
        assert ps.error_message(op.error.code, "en") == \
            "Checkpoint S2-C1-K1-B1-P1 is outside your grid cells"
        assert server.admin_json("stats")["check_ins"] == 0

    drive(run)


def test_a_server_that_is_gone_is_a_timeout_and_a_closed_window_says_so(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)
        await client.record_checkin(checkin(CHECKPOINTS[0]))
        server.stop()
        reopened = await ps.PatrolClient.open(
            str(tmp_path / "alice-phone"),
            ps.ClientOptions(language="en", connect_timeout_ms=300, request_timeout_ms=300),
            None, None)
        # Nobody answers on the server's port: the connection attempt times out (each of the
        # SDK's attempts), and the error says so, retryable.
        with pytest.raises(ps.PatrolError.Failed) as failed:
            await reopened.sync()
        assert failed.value.code == ps.ErrorCode.TIMEOUT(secs=1), failed.value
        assert failed.value.retryable
        status = await reopened.status()
        assert status.pending_ops == 1, "the check-in waits in the outbox"
        assert status.last_error.code == ps.ErrorCode.TIMEOUT(secs=1)
        state = reopened.state()
        assert state.connectivity == ps.Connectivity.OFFLINE
        assert state.last_push_error.code == ps.ErrorCode.TIMEOUT(secs=1)
        assert state.phase == ps.SyncPhase.IDLE

        # A background window that closes first ends the sync, and the status says why.
        slow = await ps.PatrolClient.open(
            str(tmp_path / "alice-phone"),
            ps.ClientOptions(language="zh-CN", connect_timeout_ms=5000), None, None)
        with pytest.raises(ps.PatrolError.Failed) as closed:
            await slow.sync_for(1000, False)
        assert closed.value.code == ps.ErrorCode.WINDOW_CLOSED(secs=1)
        assert closed.value.text == "后台同步时间（1 秒）已用完，其余内容下次同步"
        assert closed.value.retryable
        assert (await slow.status()).last_error.code == ps.ErrorCode.WINDOW_CLOSED(secs=1)
        assert (await slow.status()).pending_ops == 1
        # Cut off while connecting: idle, and not reached.
        state = slow.state()
        assert (state.phase, state.connectivity) == (ps.SyncPhase.IDLE, ps.Connectivity.OFFLINE)

    drive(run)


def test_a_cancelled_sync_loses_and_doubles_nothing(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)
        listener = stack.enter_context(listening(client))
        total = 5000
        for i in range(total):
            await client.record_checkin(checkin(CHECKPOINTS[i % len(CHECKPOINTS)]))
        task = asyncio.ensure_future(client.sync())
        await wait_for(lambda: ps.SyncPhase.PUSH in listener.phases(), "the push began")
        cancelled = task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled, "the sync was still running when cancelled"
        print(f"the cancelled sync had stored {server.admin_json('stats')['check_ins']} of {total}")
        # Cancelled: the state is idle again, and the connection it had made counts.
        state = client.state()
        assert state.phase == ps.SyncPhase.IDLE
        assert state.connectivity == ps.Connectivity.CONNECTED

        summary = await client.sync()
        assert summary.remaining == 0
        assert server.admin_json("stats")["check_ins"] == total
        assert (await client.status()).pending_ops == 0

    drive(run)


def test_sign_out_keeps_unsent_records_unless_told_and_then_empties_the_phone(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)
        photo = await client.add_photo_bytes(b"\xff\xd8 a photo of the lane \xff\xd9")
        assert len(photo) == 64
        await client.record_checkin(checkin(CHECKPOINTS[0], photos=[photo]))

        with pytest.raises(ps.PatrolError.Failed) as unsent:
            await client.sign_out(ps.Unsent.REFUSE)
        assert unsent.value.code == ps.ErrorCode.UNSENT_RECORDS(count=2)
        assert unsent.value.text == "还有 2 条记录未上传，请先同步"
        assert (await client.status()).device_id is not None, "nothing was wiped"

        await client.sync()
        await client.sign_out(ps.Unsent.REFUSE)
        status = await client.status()
        assert (status.device_id, status.user, status.pending_ops) == (None, None, 0)
        assert await client.hazards() == []
        assert await client.checkpoints() == []
        assert await client.photos() == []
        # The phone passes to the next volunteer, who enrolls on the same store.
        code = server.enrollment_code("bob", "patroller", CELL)
        bob = await client.enroll(code, None, "shared phone")
        assert bob.user == "bob"
        await client.record_checkin(checkin(CHECKPOINTS[1]))
        assert (await client.sync()).applied == 1
        assert server.admin_json("stats")["check_ins"] == 2

    drive(run)


def test_the_engine_syncs_what_is_recorded_pauses_and_stops(server, tmp_path):
    async def run(stack):
        client = await enrolled(server, tmp_path)
        listener = stack.enter_context(listening(client))
        engine = client.start_engine(ps.EngineOptions())
        await client.record_checkin(checkin(CHECKPOINTS[0]))
        await wait_for(lambda: server.admin_json("stats")["check_ins"] == 1,
                       "the engine pushed the check-in")
        # Once that sync has finished (a running sync also sends what is recorded meanwhile):
        # in the background nothing is sent, even when asked; back in the foreground at once.
        await wait_for(lambda: client.state().phase == ps.SyncPhase.IDLE
                       and any(isinstance(e, ps.SyncEvent.FINISHED) for e in list(listener.events)),
                       "the engine's sync finished")
        engine.pause()
        # A sync that had already begun (the server's notice of the first check-in starts one)
        # runs to its end, and would carry what is recorded meanwhile; paused, none begins.
        await wait_for(lambda: client.state().phase == ps.SyncPhase.IDLE,
                       "a sync already under way has finished")
        await client.record_checkin(checkin(CHECKPOINTS[1]))
        engine.sync_now()
        await asyncio.sleep(1.0)  # what must not happen, given a chance to
        assert server.admin_json("stats")["check_ins"] == 1
        engine.resume()
        await wait_for(lambda: server.admin_json("stats")["check_ins"] == 2,
                       "the engine synced on resume")
        # Stopped: a record stays in the outbox; later calls on the handle do nothing.
        await engine.stop()
        await client.record_checkin(checkin(CHECKPOINTS[2]))
        engine.sync_now()
        await asyncio.sleep(1.0)
        assert server.admin_json("stats")["check_ins"] == 2
        assert (await client.status()).pending_ops == 1
        # Closed: the store answers no more, with a typed error.
        await client.close()
        with pytest.raises(ps.PatrolError.Failed) as closed:
            await client.status()
        assert closed.value.code == ps.ErrorCode.STORAGE()

    drive(run)


def test_lists_page_and_say_when_they_change(server, tmp_path):
    async def run(stack):
        # A grid manager, who can close a hazard on the spot.
        client = await enrolled(server, tmp_path, role="grid_manager")
        listener = stack.enter_context(listening(client))
        ids = [await client.record_checkin(checkin(CHECKPOINTS[i])) for i in range(5)]
        await wait_for(lambda: any(
            e == ps.SyncEvent.DATA_CHANGED(what=ps.DataKind.CHECK_INS) for e in list(listener.events)),
            "a check-ins change")

        # Pages of two, newest first; a page after a row stays put when more are recorded.
        first = await client.recent_check_ins(2, None)
        assert [c.id for c in first] == ids[::-1][:2]
        assert all(c.state == "pending" for c in first)
        await client.record_checkin(checkin(CHECKPOINTS[6]))
        second = await client.recent_check_ins(2, first[-1].id)
        assert [c.id for c in second] == ids[::-1][2:4]
        rest = await client.recent_check_ins(10, second[-1].id)
        assert [c.id for c in rest] == ids[:1]

        # Hazards by filter: open ones of a cell, a page at a time.
        a = await client.report_hazard(ps.HazardInput(
            grid_cell="S1-C1-K1", category="electrical", description="飞线充电"))
        b = await client.report_hazard(ps.HazardInput(
            grid_cell="S1-C1-K2", category="gas", description="液化气罐"))
        fixed = await client.add_photo_bytes(b"\xff\xd8 the charger unplugged \xff\xd9")
        await client.transition_hazard(a, "fix_on_spot", ps.TransitionInput(photos=[fixed]))
        await client.transition_hazard(a, "verify_pass", ps.TransitionInput(photos=[fixed]))
        assert (await client.hazard(a)).status == "closed"
        assert [h.id for h in await client.hazards_where(ps.HazardFilter())] == [a, b]
        assert [h.id for h in await client.hazards_where(ps.HazardFilter(open_only=True))] == [b]
        assert [h.id for h in await client.hazards_where(
            ps.HazardFilter(cell="S1-C1-K1"))] == [a]
        assert [h.id for h in await client.hazards_where(
            ps.HazardFilter(limit=1, offset=1))] == [b]
        with listener.lock:
            changed = {e.what for e in listener.events if isinstance(e, ps.SyncEvent.DATA_CHANGED)}
        assert changed == {ps.DataKind.CHECK_INS, ps.DataKind.HAZARDS, ps.DataKind.PHOTOS}, changed

        # A sync changes their state, and says so.
        await client.sync()
        assert all(c.state == "synced" for c in await client.recent_check_ins(10, None))
        with listener.lock:
            changed = {e.what for e in listener.events if isinstance(e, ps.SyncEvent.DATA_CHANGED)}
        assert ps.DataKind.GRID in changed

    drive(run)


class MemoryKeys(ps.KeyStore):
    """An app's key store (here a dict; on a phone, Keystore-backed storage or the Keychain)."""

    def __init__(self):
        self.saved = {}

    def load(self, name):
        return self.saved.get(name)

    def save(self, name, data):
        self.saved[name] = bytes(data)

    def remove(self, name):
        self.saved.pop(name, None)


class FixedClock(ps.PlatformClock):
    def since_boot_ms(self):
        return 123_456


def test_credentials_live_in_the_apps_key_store_and_the_platform_gives_the_clock(
        server, tmp_path):
    async def run(stack):
        keys = MemoryKeys()
        state = tmp_path / "keychain-phone"
        client = await ps.PatrolClient.open(str(state), ps.ClientOptions(), keys, FixedClock())
        await client.enroll(server.enrollment_code("carol", "patroller", CELL), None, "carol")
        assert sorted(keys.saved) == ["device.crt", "device.key", "server-ca.der"]
        assert not any(p.name in ("device.key", "device.crt", "server-ca.der") for p in state.iterdir()), \
            list(state.iterdir())
        await client.record_checkin(checkin(CHECKPOINTS[0]))
        assert (await client.sync()).applied == 1
        [stored] = server.admin_json("check-ins")
        assert stored["monotonic_ms"] == 123_456, stored
        # Signing out removes them from the app's store too.
        await client.sign_out(ps.Unsent.REFUSE)
        assert keys.saved == {}

        # Signing out with a record unsent hands it over: carol's credentials stay in the app's
        # store, under the hand-over's names, until it is sent.
        await client.enroll(server.enrollment_code("carol", "patroller", CELL), None, "carol")
        await client.record_checkin(checkin(CHECKPOINTS[1]))
        device = (await client.status()).device_id
        await client.sign_out(ps.Unsent.HAND_OVER)
        assert sorted(keys.saved) == [f"handover/{device}/{name}"
                                      for name in ("device.crt", "device.key", "server-ca.der")]
        status = await client.status()
        assert (status.device_id, status.pending_ops, status.handed_over) == (None, 0, 1)
        # The next sync sends it as carol's, though nobody is enrolled on the phone now.
        with pytest.raises(ps.PatrolError.Failed) as not_enrolled:
            await client.sync()
        assert not_enrolled.value.code == ps.ErrorCode.NOT_ENROLLED()
        assert (await client.status()).handed_over == 0
        assert [c["user"] for c in server.admin_json("check-ins")] == ["carol", "carol"]
        # Sent, the hand-over is gone from the app's store too.
        assert keys.saved == {}

    drive(run)
