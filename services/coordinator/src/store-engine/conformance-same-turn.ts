/**
 * Reports that reach the store in the same turn (PostgreSQL records them as
 * one batch, postgres-completions.ts; SQLite one after another): each is
 * judged as if it had come alone, after the ones before it. Run inside
 * storeEngineConformance, so on both engines.
 */
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { SUBJECTS } from '@nightshift/common';
import { JobCostSchema } from '@nightshift/proto';
import type { WithFixture } from './conformance.js';
import { jobId, type JobRow } from '../store/rows.js';
import { LEASE, PROC, assertCountsExact, drainEvents, newJobs, report } from './conformance-helpers.js';

const spec = (name: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1' });

export function sameTurnConformance(withFixture: WithFixture): void {
  withFixture('reports in one turn are judged in order: a copy\'s after its original\'s is audited, a stranger\'s refused, a skip of a render announced just before is not announced again, each sweep settled once', async ({ engine }, clock) => {
    await engine.createSweep(spec('t'), newJobs('t', 4), 'sw-t');
    const [a, b, c, d] = [(await engine.leaseNext('n1', PROC, LEASE))!, (await engine.leaseNext('n2', PROC, LEASE))!, (await engine.leaseNext('n3', PROC, LEASE))!, (await engine.leaseNext('n4', PROC, LEASE))!];
    // A second sweep whose one job is the same render as `a` (same tag, same index: same render key).
    await engine.createSweep(spec('t2'), newJobs('t', 1), 'sw-t2');
    const e = (await engine.leaseNext('n5', PROC, LEASE))!;
    assert.deepEqual([a.render_key, e.sweep_id], [e.render_key, 'sw-t2']);
    assert.ok(await engine.leaseCopy(a.id, 'n6', LEASE));
    await drainEvents(engine);

    clock.t += 1_000;
    const outcomes = await Promise.all([
      engine.completeJob(a.id, 'n1', report(a)),
      engine.completeJob(a.id, 'n6', report(a)),
      engine.completeJob(b.id, 'intruder', report(b)),
      engine.completeJob(b.id, 'n2', report(b)),
      engine.completeJob(c.id, 'n3', report(c)),
      engine.completeJob(d.id, 'n4', report(d)),
      engine.completeJob(e.id, 'n5', report(e, true)),
    ]);
    assert.deepEqual(
      outcomes.map((o) => [o.accepted, o.cancelOn, o.refused?.reason]),
      [
        [true, ['n6'], undefined],
        [false, [], undefined],
        [false, [], 'not held'],
        [true, [], undefined],
        [true, [], undefined],
        [true, [], undefined],
        [true, [], undefined],
      ],
    );
    assert.deepEqual(await engine.listings.results(a.id), [
      { node_id: 'n1', skipped: 0, accepted: 1, copy: 0 },
      { node_id: 'n6', skipped: 0, accepted: 0, copy: 0 },
    ], 'the copy\'s report came after the job was done: audited, no longer a copy');
    assert.deepEqual(await engine.listings.results(b.id), [{ node_id: 'n2', skipped: 0, accepted: 1, copy: 0 }], 'the stranger\'s report left nothing');
    const after = (await engine.getJob(a.id))!;
    assert.deepEqual([after.state, after.node_id, after.prev_node_id, after.copy_node_id, after.finished_at], ['done', 'n1', 'n6', null, clock.t]);
    assert.equal((await engine.getJob(e.id))!.announced, 0, 'its render was announced by a\'s report');
    await assertCountsExact(engine, 'sw-t', 4, { done: 4 });
    await assertCountsExact(engine, 'sw-t2', 1, { skipped: 1 });
    assert.deepEqual([(await engine.getSweep('sw-t'))!.status, (await engine.getSweep('sw-t2'))!.status], ['done', 'done']);
    assert.deepEqual(
      (await drainEvents(engine)).map((ev) => [ev.subject, ev.msg_id]),
      [
        [SUBJECTS.imageRendered, 'rk-t-0'],
        [SUBJECTS.imageRendered, 'rk-t-1'],
        [SUBJECTS.imageRendered, 'rk-t-2'],
        [SUBJECTS.imageRendered, 'rk-t-3'],
        [SUBJECTS.sweepDone, 'sweep.done.sw-t'],
        [SUBJECTS.sweepDone, 'sweep.done.sw-t2'],
      ],
    );
  });

  withFixture('costs reported in one turn: once per job and node (a repeat in the same turn too), a skip and an unknown job not at all', async ({ engine }) => {
    await engine.createSweep(spec('tc'), newJobs('tc', 2), 'sw-tc');
    const [a, b] = [(await engine.leaseNext('n1', PROC, LEASE))!, (await engine.leaseNext('n2', PROC, LEASE))!];
    const cost = (gpuMs: number) => create(JobCostSchema, { gpuMs, energyMeasured: false, energyJoules: 0, gpuName: 'NVIDIA H200', driverVersion: '550.54.15' });
    const got = await Promise.all([
      engine.costs.record(a.id, 'n1', { renderMs: 1_000, skipped: false, cost: cost(1_000) }),
      engine.costs.record(a.id, 'n1', { renderMs: 9_000, skipped: false, cost: cost(9_000) }),
      engine.costs.record(a.id, 'n3', { renderMs: 2_000, skipped: false, cost: cost(2_000) }),
      engine.costs.record(b.id, 'n2', { renderMs: 0, skipped: true, cost: cost(0) }),
      engine.costs.record('sw-tc-999999', 'n1', { renderMs: 5, skipped: false, cost: cost(5) }),
    ]);
    assert.deepEqual(got.map((r) => r.recorded), [true, false, true, false, false]);
    assert.deepEqual((await engine.costs.jobCosts(a.id)).map((r) => [r.node_id, r.gpu_ms]), [['n1', 1_000], ['n3', 2_000]], 'the first report of a job and node counts');
    assert.deepEqual((await engine.costs.sweepSums('sw-tc')).map((r) => [r.node_id, r.renders, r.gpu_ms]), [['n1', 1, 1_000], ['n3', 1, 2_000]]);
  });

  withFixture('held counts and heartbeats in one turn: each node renews its own leases and copies (a job held by both, both), is seen, and hears only what is not its own', async ({ engine }, clock) => {
    for (const n of ['n1', 'n2', 'n3']) await engine.nodes.upsertNode(n, `gpu-${n}`, { backends: ['procedural'] });
    await engine.createSweep(spec('th'), newJobs('th', 3), 'sw-th');
    const [a, b, c] = [(await engine.leaseNext('n1', PROC, LEASE))!, (await engine.leaseNext('n2', PROC, LEASE))!, (await engine.leaseNext('n3', PROC, LEASE))!];
    assert.ok(await engine.leaseCopy(a.id, 'n2', LEASE));
    assert.deepEqual(await Promise.all(['n1', 'n2', 'n3', 'n2', 'n9'].map((n) => engine.heldCount(n))), [1, 2, 1, 2, 0], 'held counts asked in one turn: each its own, a copy counted');
    clock.t += 10_000;
    const named = await Promise.all([
      engine.heartbeat('n1', [a.id, b.id], LEASE),
      engine.heartbeat('n2', [b.id, a.id], LEASE),
      engine.heartbeat('n2', [b.id], 5 * LEASE),
      engine.heartbeat('n3', [c.id, 'sw-th-999999'], LEASE),
    ]);
    assert.deepEqual(named, [[b.id], [], [], ['sw-th-999999']]);
    const [ra, rb, rc] = [(await engine.getJob(a.id))!, (await engine.getJob(b.id))!, (await engine.getJob(c.id))!];
    assert.deepEqual([ra.lease_expires_at, ra.copy_lease_expires_at, rc.lease_expires_at], [clock.t + LEASE, clock.t + LEASE, clock.t + LEASE], 'the lease and the copy of one job, both renewed');
    assert.ok(rb.lease_expires_at === clock.t + LEASE || rb.lease_expires_at === clock.t + 5 * LEASE, 'renewed by one of its heartbeats');
    assert.deepEqual((await engine.nodes.listNodes()).map((n) => [n.id, n.last_seen]), [['n1', clock.t], ['n2', clock.t], ['n3', clock.t]]);
  });
  withFixture('picks in one turn (PostgreSQL leases a group of like nodes in one statement): a blocklisted node and an excluded one get what they would alone, another kind of node nothing, the others a job each in the order they asked', async ({ engine }, clock) => {
    await engine.createSweep({ ...spec('a'), priority: 1 }, newJobs('pa', 6), 'sw-pa');
    const fail = { error: 'bad', logTail: '', outOfMemory: false };
    // 'flaky' fails three of sw-pa's jobs (blocklisted for it), then 'ex' its first (excluded from that job only).
    for (const node of ['flaky', 'flaky', 'flaky', 'ex']) {
      const job = (await engine.leaseNext(node, PROC, LEASE))!;
      await engine.failJob(job.id, { id: node, vramMb: PROC.vramMb }, fail);
      clock.t += 60_000;
    }
    assert.ok((await engine.exclusions(jobId('sw-pa', 0))).includes('ex'));
    await engine.createSweep(spec('b'), newJobs('pb', 2), 'sw-pb');
    const turn = (nodes: string[]) => Promise.all(nodes.map((node) => engine.leaseNext(node, node === 'other' ? { ...PROC, backends: ['exec'] } : PROC, LEASE)));
    const picked = (jobs: (JobRow | undefined)[]) => jobs.map((j) => j && [j.sweep_id, j.idx, j.node_id, j.state]);
    assert.deepEqual(picked(await turn(['flaky', 'ex', 'other'])), [['sw-pb', 0, 'flaky', 'leased'], ['sw-pa', 1, 'ex', 'leased'], undefined]);
    assert.deepEqual(
      picked(await turn(['n1', 'n2', 'n3', 'n4'])),
      [['sw-pa', 0, 'n1', 'leased'], ['sw-pa', 2, 'n2', 'leased'], ['sw-pa', 3, 'n3', 'leased'], ['sw-pa', 4, 'n4', 'leased']],
    );
    // More nodes than jobs: the first to ask get them, the higher priority sweep's first.
    assert.deepEqual(picked(await turn(['n5', 'n6', 'n7'])), [['sw-pa', 5, 'n5', 'leased'], ['sw-pb', 1, 'n6', 'leased'], undefined]);
    await assertCountsExact(engine, 'sw-pa', 6, { running: 6 });
    await assertCountsExact(engine, 'sw-pb', 2, { running: 2 });
    assert.equal((await engine.getSweep('sw-pb'))!.status, 'running');
  });
}
