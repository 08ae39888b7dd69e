/**
 * The conformance suite's sweep control (cancel, pause, priority), what
 * placement reads and fails, and what the node hub counts: run inside
 * storeEngineConformance, so on both engines.
 */
import assert from 'node:assert/strict';
import { SUBJECTS } from '@nightshift/common';
import { jobId } from '../store/rows.js';
import type { Wake } from './engine.js';
import type { WithFixture } from './conformance.js';
import { LEASE, PROC, assertCountsExact, drainEvents, newJobs, report } from './conformance-helpers.js';

const CRASH = { error: 'crash', logTail: '', outOfMemory: false };

export function controlConformance(withFixture: WithFixture): void {
  withFixture('cancel, pause and priority: a paused sweep is not picked, resuming wakes pickers, a cancel ends every open job and returns the leased ones', async ({ engine, another }, clock) => {
    const other = await another();
    await engine.createSweep({ name: 'x', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('cx', 4), 'sw-cx');
    await engine.createSweep({ name: 'q', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('cq', 1), 'sw-cq');
    assert.equal(await engine.setPaused('sw-cq', true), true);
    const a = (await engine.leaseNext('n1', PROC, LEASE))!;
    const b = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.deepEqual([a.sweep_id, b.sweep_id], ['sw-cx', 'sw-cx'], 'the paused sweep is passed over');
    assert.ok(await engine.leaseCopy(a.id, 'n3', LEASE));
    assert.equal(await engine.setPaused('sw-cx', true), true);
    assert.equal(await engine.setPaused('sw-cx', true), true, 'paused already');
    assert.equal((await engine.getSweep('sw-cx'))!.status, 'paused');
    assert.equal(await engine.leaseNext('n4', PROC, LEASE), undefined, 'nothing to pick while both are paused');

    const wakes: Wake[] = [];
    let woken!: () => void;
    const resumed = new Promise<void>((resolve) => (woken = resolve));
    const unsubscribe = await other.subscribe((w) => {
      wakes.push(w);
      if (w.jobs) woken();
    });
    assert.equal(await engine.setPaused('sw-cx', false), true);
    await resumed;
    await unsubscribe();
    assert.equal((await engine.getSweep('sw-cx'))!.status, 'running', 'it had started');
    assert.equal(await engine.setPaused('sw-cq', false), true);
    assert.equal((await engine.getSweep('sw-cq'))!.status, 'queued', 'it had not');

    assert.equal(await engine.setPriority('sw-cx', 7), true);
    assert.equal((await engine.getSweep('sw-cx'))!.priority, 7);
    assert.equal(await engine.setPriority('sw-none', 7), false);
    assert.equal((await engine.leaseNext('n4', PROC, LEASE))!.sweep_id, 'sw-cx', 'its priority counts at once');

    clock.t += 1_000;
    const running = await engine.cancelSweep('sw-cx');
    assert.deepEqual(running.map((j) => [j.id, j.state, j.node_id, j.copy_node_id]), [
      [a.id, 'leased', 'n1', 'n3'],
      [b.id, 'leased', 'n2', null],
      [jobId('sw-cx', 2), 'leased', 'n4', null],
    ]);
    const cancelled = (await engine.getJob(a.id))!;
    assert.deepEqual([cancelled.state, cancelled.finished_at, cancelled.lease_expires_at, cancelled.copy_node_id], ['cancelled', clock.t, null, null]);
    await assertCountsExact(engine, 'sw-cx', 4, { cancelled: 4 });
    const sweep = (await engine.getSweep('sw-cx'))!;
    assert.deepEqual([sweep.status, sweep.finished_at], ['cancelled', clock.t]);
    assert.deepEqual(await engine.cancelSweep('sw-cx'), [], 'cancelled once');
    assert.equal(await engine.setPaused('sw-cx', false), false, 'a finished sweep stays finished');
    assert.equal((await engine.getUser('local'))!.running, 0, "the owner's running count follows");
    const events = await drainEvents(engine);
    assert.deepEqual(events.filter((e) => e.subject === SUBJECTS.sweepCancelled), [
      { subject: SUBJECTS.sweepCancelled, msg_id: 'sweep.cancelled.sw-cx', payload: { sweepId: 'sw-cx', cancelledAt: new Date(clock.t).toISOString() } },
    ]);
  });

  withFixture("placement's reads and failures: queued requirements, exclusions to relax, blocklists, recent finishes, a job or a sweep no node can run", async ({ engine }, clock) => {
    const floors = [0, 10_000, 0, 20_000, 10_000, 0];
    await engine.createSweep({ name: 'p', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('pl', floors.length).map((j, i) => ({ ...j, minVramMb: floors[i]! })), 'sw-pl');
    assert.deepEqual(await engine.queuedRequirements('sw-pl'), [
      { backend: 'procedural', min_vram_mb: 0, n: 3 },
      { backend: 'procedural', min_vram_mb: 10_000, n: 2 },
      { backend: 'procedural', min_vram_mb: 20_000, n: 1 },
    ]);
    assert.deepEqual(await engine.queuedFloors('sw-pl'), [0, 10_000, 20_000].map((v) => ({ backend: 'procedural', min_vram_mb: v })), 'the floors alone');
    assert.deepEqual(await engine.queuedRequirements('sw-pl', [20_000, 0]), [
      { backend: 'procedural', min_vram_mb: 0, n: 3 },
      { backend: 'procedural', min_vram_mb: 20_000, n: 1 },
    ], 'only the floors asked for are counted');
    assert.deepEqual(await engine.queuedFloors('no-such-sweep'), []);
    const big = { ...PROC, vramMb: 24_576 };
    // 'flaky' fails three jobs (blocklisted); 'b' one of them too.
    const failed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = (await engine.leaseNext('flaky', big, LEASE))!;
      await engine.failJob(job.id, { id: 'flaky', vramMb: big.vramMb }, CRASH);
      failed.push(job.id);
    }
    clock.t += 60_000;
    const again = (await engine.leaseNext('b', big, LEASE))!;
    assert.equal(again.id, failed[0]);
    await engine.failJob(again.id, { id: 'b', vramMb: big.vramMb }, CRASH);
    assert.deepEqual(await engine.blockedNodes('sw-pl'), ['flaky']);
    assert.deepEqual(await engine.queuedWithExclusions(100), [
      { id: failed[0]!, sweep_id: 'sw-pl', backend: 'procedural', min_vram_mb: 0, excluded: ['b', 'flaky'] },
      { id: failed[1]!, sweep_id: 'sw-pl', backend: 'procedural', min_vram_mb: 10_000, excluded: ['flaky'] },
      { id: failed[2]!, sweep_id: 'sw-pl', backend: 'procedural', min_vram_mb: 0, excluded: ['flaky'] },
    ]);
    await engine.clearExclusions(failed[0]!);
    assert.deepEqual((await engine.queuedWithExclusions(100)).map((r) => r.id), [failed[1], failed[2]]);
    assert.deepEqual(await engine.exclusions(failed[0]!), []);

    clock.t += 60_000;
    const first = (await engine.leaseNext('c', big, LEASE))!;
    clock.t += 1_000;
    await engine.completeJob(first.id, 'c', { ...report(first), renderMs: 900 });
    const second = (await engine.leaseNext('d', big, LEASE))!;
    clock.t += 1_000;
    await engine.completeJob(second.id, 'd', { ...report(second), renderMs: 1_100 });
    assert.deepEqual(await engine.recentFinishes('sw-pl', 5), [
      { finished_at: clock.t, render_ms: 1_100, node_id: 'd' },
      { finished_at: clock.t - 1_000, render_ms: 900, node_id: 'c' },
    ]);
    assert.equal((await engine.recentFinishes('sw-pl', 1)).length, 1);

    const tooBig = jobId('sw-pl', 3);
    await engine.failQueuedJob(tooBig, 'out of memory on every node');
    const tooBigRow = (await engine.getJob(tooBig))!;
    assert.deepEqual([tooBigRow.state, tooBigRow.error, tooBigRow.finished_at], ['failed', 'out of memory on every node', clock.t]);
    await engine.failQueuedJob(first.id, 'not queued');
    assert.equal((await engine.getJob(first.id))!.state, 'done', 'only a queued job');
    const held = (await engine.leaseNext('e', big, LEASE))!;
    const counts = await engine.counts('sw-pl');
    assert.equal(await engine.failQueued('sw-pl', 'no capable node'), counts.queued);
    assert.equal((await engine.getSweep('sw-pl'))!.status, 'running', 'a job is still running');
    await engine.completeJob(held.id, 'e', report(held));
    // Its last job done: it settles as its failed jobs left it. A sweep failed for want of a node says so even with images.
    assert.equal((await engine.getSweep('sw-pl'))!.status, 'done');
    await engine.createSweep({ name: 'n', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('nc', 2), 'sw-nc');
    const one = (await engine.leaseNext('f', big, LEASE))!;
    await engine.completeJob(one.id, 'f', report(one));
    assert.equal(await engine.failQueued('sw-nc', 'no capable node'), 1);
    assert.equal((await engine.getSweep('sw-nc'))!.status, 'failed');
    await assertCountsExact(engine, 'sw-nc', 2, { done: 1, failed: 1 });
  });

  withFixture('what a node holds counts its leases and copies; after a restart every lease gets at least the grace', async ({ engine }, clock) => {
    await engine.createSweep({ name: 'h', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('hc', 4), 'sw-hc');
    const a = (await engine.leaseNext('n1', PROC, LEASE))!;
    await engine.leaseNext('n1', PROC, LEASE);
    const c = (await engine.leaseNext('n2', PROC, LEASE))!;
    await engine.leaseNext('n3', PROC, 500_000);
    await engine.leaseCopy(c.id, 'n1', LEASE);
    assert.deepEqual([await engine.heldCount('n1'), await engine.heldCount('n2'), await engine.heldCount('n9')], [3, 1, 0]);
    clock.t += 10_000;
    assert.equal(await engine.extendAllLeases(100_000), 4);
    assert.equal((await engine.getJob(a.id))!.lease_expires_at, clock.t + 100_000);
    assert.equal((await engine.getJob(c.id))!.copy_lease_expires_at, clock.t + 100_000);
    assert.equal((await engine.getJob(jobId('sw-hc', 3)))!.lease_expires_at, clock.t - 10_000 + 500_000, 'a longer lease is kept');
  });

  withFixture("a restart's grace: on PostgreSQL only for leases of nodes no live replica serves; one SQLite process served them all", async ({ engine, another, kill }, clock) => {
    const live = await another();
    const gone = await another();
    await engine.createSweep({ name: 'g', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('gr', 3), 'sw-gr');
    await live.nodes.upsertNode('n-live', 'live', { backends: ['procedural'], vramMb: 8_192 });
    await gone.nodes.upsertNode('n-gone', 'gone', { backends: ['procedural'], vramMb: 8_192 });
    const kept = (await live.leaseNext('n-live', PROC, LEASE))!;
    const orphaned = (await gone.leaseNext('n-gone', PROC, LEASE))!;
    const rowless = (await gone.leaseNext('n-unknown', PROC, LEASE))!;
    await live.leaseCopy(orphaned.id, 'n-live', LEASE);
    if (engine.kind === 'postgres') await kill(gone); // its replica died: its nodes are nobody's
    clock.t += 10_000;
    const extended = await engine.extendAllLeases(100_000);
    const after = async (id: string) => (await engine.getJob(id))!;
    assert.equal((await after(orphaned.id)).lease_expires_at, clock.t + 100_000, "a dead replica's node gets the grace");
    assert.equal((await after(rowless.id)).lease_expires_at, clock.t + 100_000, 'so does a holder with no node row');
    if (engine.kind === 'postgres') {
      assert.equal(extended, 2);
      assert.equal((await after(kept.id)).lease_expires_at, kept.lease_expires_at, 'a node a live replica serves keeps its own lease');
      assert.equal((await after(orphaned.id)).copy_lease_expires_at, orphaned.lease_expires_at, "and its copy's");
    } else {
      assert.equal(extended, 3);
      assert.equal((await after(kept.id)).lease_expires_at, clock.t + 100_000);
    }
  });
}
