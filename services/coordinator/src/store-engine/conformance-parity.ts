/**
 * The conformance suite's second half (issue 12's parity with the SQLite
 * Store): people and their fair share in the pick, attempts refunded,
 * straggler copies, registry-model placement (rule 4), wake-ups between
 * connections, costs and share links. Run inside storeEngineConformance, so on both engines.
 */
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobCostSchema } from '@nightshift/proto';
import { jobId } from '../store/rows.js';
import type { NodeModelState } from '../node-models.js';
import type { NodeCaps } from '../placement.js';
import type { PickModels, Wake } from './engine.js';
import type { WithFixture } from './conformance.js';
import { LEASE, PROC, assertCountsExact, newJobs, report } from './conformance-helpers.js';

const CRASH = { error: 'crash', logTail: '', outOfMemory: false };

export function userConformance(withFixture: WithFixture): void {
  withFixture('users: keys by hash, one active key each, revoked keys refused; weights and admin flags kept', async ({ engine }) => {
    const local = (await engine.getUser('local'))!;
    assert.deepEqual({ admin: local.admin, weight: local.weight, running: local.running }, { admin: 1, weight: 1, running: 0 }, 'the farm token\'s user is there from the start');
    assert.ok(await engine.addKey({ name: 'alice', admin: false, weight: 2, quotaImages: 500 }, 'hash-a'));
    assert.equal(await engine.addKey({ name: 'alice', admin: true, weight: 9, quotaImages: null }, 'hash-a2'), undefined, 'one active key a user');
    const alice = (await engine.userByKeyHash('hash-a'))!;
    assert.deepEqual({ ...alice, created_at: 0 }, { name: 'alice', admin: 0, weight: 2, quota_images: 500, running: 0, created_at: 0 });
    assert.equal(await engine.userByKeyHash('hash-a2'), undefined);
    assert.equal(await engine.revokeKeys('alice'), 1);
    assert.equal(await engine.revokeKeys('alice'), 0);
    assert.equal(await engine.userByKeyHash('hash-a'), undefined, 'a revoked key is refused');
    assert.ok(await engine.addKey({ name: 'alice', admin: true, weight: 0.5, quotaImages: null }, 'hash-a3'));
    const again = (await engine.getUser('alice'))!;
    assert.deepEqual([again.admin, again.weight, again.quota_images], [1, 0.5, null], 'a new key updates the user');
  });

  withFixture('the first key: added only while no key is active; of first keys made at once on two connections exactly one is', async ({ engine, another }) => {
    const other = await another();
    const tries = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? other : engine).addFirstKey({ name: `first${i}`, admin: true, weight: 1, quotaImages: null }, `hash-first${i}`)),
    );
    assert.equal(tries.filter(Boolean).length, 1, 'one first key');
    assert.deepEqual(await engine.people.activeAdmins(), [`first${tries.findIndex(Boolean)}`]);
    assert.equal(await engine.addFirstKey({ name: 'late', admin: true, weight: 1, quotaImages: null }, 'hash-late'), undefined, 'a key exists: not a first key');
    assert.equal(await engine.getUser('late'), undefined, 'nothing of it written');
    await engine.revokeKeys(`first${tries.findIndex(Boolean)}`);
    assert.ok(await engine.addFirstKey({ name: 'again', admin: true, weight: 1, quotaImages: null }, 'hash-again'), 'every key revoked: the farm is open, a first key again');
  });

  withFixture("the last admin key: never revoked by revokeKeysKeepingAnAdmin; two admins revoked at once on two connections leave one", async ({ engine, another }) => {
    const other = await another();
    for (const name of ['ann', 'bea']) assert.ok(await engine.addKey({ name, admin: true, weight: 1, quotaImages: null }, `hash-${name}`));
    assert.ok(await engine.addKey({ name: 'cy', admin: false, weight: 1, quotaImages: null }, 'hash-cy'));
    const [a, b] = await Promise.all([engine.revokeKeysKeepingAnAdmin('ann'), other.revokeKeysKeepingAnAdmin('bea')]);
    assert.deepEqual([a, b].filter((n) => n !== undefined), [1], 'one revoked, the other refused');
    assert.equal((await engine.people.activeAdmins()).length, 1);
    assert.equal(await engine.revokeKeysKeepingAnAdmin('cy'), 1, 'a key that is no admin is revoked as before');
    assert.equal(await engine.revokeKeysKeepingAnAdmin('nobody'), 0);
  });

  withFixture("fair share: users by (running + 1) / weight; a user's priority orders only their own sweeps, an admin's reaches across; running follows every lease change", async ({ engine }) => {
    await engine.addKey({ name: 'alice', admin: false, weight: 1, quotaImages: null }, 'ka');
    await engine.addKey({ name: 'bob', admin: false, weight: 2, quotaImages: null }, 'kb');
    await engine.addKey({ name: 'carol', admin: true, weight: 1, quotaImages: null }, 'kc');
    const sweep = (id: string, owner: string, priority: number, n: number) =>
      engine.createSweep({ name: id, spec: {}, priority, backend: 'procedural', model: 'm1', owner }, newJobs(id, n), id);
    await sweep('a-low', 'alice', 0, 4);
    await sweep('a-high', 'alice', 3, 2);
    await sweep('b', 'bob', 0, 8);
    await sweep('c', 'carol', 1, 1);
    await sweep('a-neg', 'alice', -1, 1);
    const picked: string[] = [];
    const jobs: string[] = [];
    for (let i = 0; i < 9; i++) {
      const job = (await engine.leaseNext(`n${i}`, PROC, LEASE))!;
      picked.push(job.sweep_id);
      jobs.push(job.id);
    }
    // carol is an admin: her priority 1 comes first. Then bob (weight 2) takes two for alice's one;
    // alice's priority 3 only puts a-high before her own a-low; at equal shares her a-high beats bob's b (priority 0).
    assert.deepEqual(picked, ['c', 'b', 'a-high', 'b', 'b', 'a-high', 'b', 'b', 'a-low']);
    const running = async () => Object.fromEntries(await Promise.all(['alice', 'bob', 'carol'].map(async (u) => [u, (await engine.getUser(u))!.running] as const)));
    assert.deepEqual(await running(), { alice: 3, bob: 5, carol: 1 });
    await engine.completeJob(jobs[1]!, 'n1', report((await engine.getJob(jobs[1]!))!));
    await engine.failJob(jobs[2]!, { id: 'n2', vramMb: PROC.vramMb }, CRASH);
    await engine.requeue([jobs[3]!], 'asked');
    assert.deepEqual(await running(), { alice: 2, bob: 3, carol: 1 });
    // alice's -1 yields to everyone's work: her a-neg job is the very last picked.
    const rest: string[] = [];
    for (let job = await engine.leaseNext('late', PROC, LEASE); job; job = await engine.leaseNext('late', PROC, LEASE)) rest.push(job.sweep_id);
    assert.equal(rest.at(-1), 'a-neg');
    assert.equal(rest.filter((s) => s === 'a-neg').length, 1);
    assert.equal(rest.includes('a-high'), false, 'its failed job waits out its backoff');
    assert.deepEqual(await running(), { alice: 2 + 3 + 1, bob: 3 + 4, carol: 1 });
  });
}

export function requeueConformance(withFixture: WithFixture): void {
  withFixture('a requeue may refund its attempt; a model the node could not fetch excludes it without using up an attempt', async ({ engine }) => {
    await engine.createSweep({ name: 'r', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('rf', 2), 'sw-rf');
    const a = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(a.attempts, 1);
    await engine.requeue([a.id], 'node left', { refundAttempt: true });
    const refunded = (await engine.getJob(a.id))!;
    assert.deepEqual([refunded.state, refunded.attempts, refunded.error, refunded.prev_node_id], ['queued', 0, 'node left', 'n1']);
    assert.equal((await engine.leaseNext('n1', PROC, LEASE))!.attempts, 1);
    await engine.requeue([a.id], 'asked');
    assert.equal((await engine.getJob(a.id))!.attempts, 1, 'an ordinary requeue keeps the attempt');
    await engine.requeue([a.id], 'again', { refundAttempt: true });
    assert.equal((await engine.getJob(a.id))!.attempts, 1, 'only a leased job is requeued');

    const held = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.equal(held.id, a.id);
    assert.equal(held.attempts, 2);
    assert.equal(await engine.returnUnfetched(held.id, 'n9', 'no model'), undefined, 'not its job');
    const was = (await engine.returnUnfetched(held.id, 'n2', 'model unavailable on n2: 404'))!;
    assert.deepEqual([was.state, was.node_id], ['leased', 'n2'], 'the job as it was');
    const back = (await engine.getJob(held.id))!;
    assert.deepEqual([back.state, back.attempts, back.node_id, back.prev_node_id, back.error], ['queued', 1, null, 'n2', 'model unavailable on n2: 404']);
    assert.deepEqual(await engine.exclusions(held.id), ['n2']);
    assert.equal((await engine.leaseNext('n2', PROC, LEASE))!.id, jobId('sw-rf', 1), 'n2 never gets it again');
    assert.equal((await engine.leaseNext('n3', PROC, LEASE))!.id, held.id);
    await assertCountsExact(engine, 'sw-rf', 2, { running: 2 });
  });
}

export function copyConformance(withFixture: WithFixture): void {
  withFixture('straggler copies: chosen for idle nodes (none at all while queued or copied), renewed, first result wins, a failed copy ends, a lapsed holder hands over to its copy', async ({ engine }, clock) => {
    await engine.createSweep({ name: 'c', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('cp', 3), 'sw-cp');
    const t0 = clock.t;
    const j0 = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(await engine.anyStraggler(clock.t), false, 'its sweep still has jobs queued');
    clock.t += 1_000;
    const j1 = (await engine.leaseNext('n2', PROC, LEASE))!;
    clock.t += 1_000;
    const j2 = (await engine.leaseNext('n5', PROC, LEASE))!;
    clock.t = t0 + 10_000;
    assert.equal(await engine.anyStraggler(t0 - 1), false, 'none running since before the cut');
    assert.equal(await engine.anyStraggler(t0), true);
    assert.equal(await engine.straggler('n1', PROC, clock.t - 5_000), j1.id, 'the oldest job not its own');
    assert.equal(await engine.straggler('n9', PROC, t0 + 500), j0.id, 'only jobs running since before the cut');
    assert.equal(await engine.straggler('n9', { ...PROC, backends: ['exec'] }, clock.t), undefined, 'its backend must fit');
    const copy = (await engine.leaseCopy(j0.id, 'n3', LEASE))!;
    assert.deepEqual([copy.node_id, copy.copy_node_id, copy.copy_lease_expires_at], ['n1', 'n3', clock.t + LEASE]);
    assert.equal(await engine.leaseCopy(j0.id, 'n4', LEASE), undefined, 'one copy a job');
    assert.equal(await engine.leaseCopy(j1.id, 'n2', LEASE), undefined, 'never on its own holder');
    assert.equal(await engine.straggler('n4', PROC, clock.t), j1.id, 'a job with a copy is not chosen again');
    assert.ok(await engine.leaseCopy(j1.id, 'n4', LEASE));
    assert.ok(await engine.leaseCopy(j2.id, 'n6', LEASE));
    assert.equal(await engine.anyStraggler(clock.t), false, 'every job has its copy');
    assert.deepEqual((await engine.leasedTo('n3')).map((j) => j.id), [j0.id]);
    assert.deepEqual((await engine.leasedTo('n1')).map((j) => j.id), [j0.id]);
    await assertCountsExact(engine, 'sw-cp', 3, { running: 3 });

    clock.t = t0 + 30_000;
    await engine.renewLeases('n4', [j1.id, j0.id], LEASE);
    const renewed = (await engine.getJob(j1.id))!;
    assert.equal(renewed.copy_lease_expires_at, clock.t + LEASE, "the copy's lease is renewed by its node");
    assert.equal(renewed.lease_expires_at, j1.lease_expires_at, "the holder's is not");
    assert.equal((await engine.getJob(j0.id))!.copy_lease_expires_at, copy.copy_lease_expires_at, 'n4 holds nothing of j0');

    assert.deepEqual(await engine.completeJob(j0.id, 'n3', report(j0)), { accepted: true, cancelOn: ['n1'] }, 'the copy finished first: its holder is told to stop');
    const won = (await engine.getJob(j0.id))!;
    assert.deepEqual([won.state, won.node_id, won.copy_node_id, won.prev_node_id], ['done', 'n3', null, 'n1']);

    const failedCopy = (await engine.failJob(j2.id, { id: 'n6', vramMb: PROC.vramMb }, CRASH))!;
    assert.equal(failedCopy.blocklisted, false);
    assert.deepEqual([failedCopy.job.state, failedCopy.job.node_id, failedCopy.job.copy_node_id, failedCopy.job.prev_node_id], ['leased', 'n5', null, 'n6']);
    assert.equal(failedCopy.job.attempts, 1, 'a failed copy costs no attempt');

    clock.t = t0 + 31_500; // j1's holder lease (t0 + 31,000) lapsed; its copy's was renewed
    assert.deepEqual(await engine.expireLeases(), [], 'handed to the copy, not requeued');
    const handed = (await engine.getJob(j1.id))!;
    assert.deepEqual([handed.state, handed.node_id, handed.prev_node_id, handed.copy_node_id, handed.lease_expires_at], ['leased', 'n4', 'n2', null, renewed.copy_lease_expires_at]);
    await assertCountsExact(engine, 'sw-cp', 3, { running: 2, done: 1 });

    const released = await engine.releaseNode('n5', 'node silent');
    assert.deepEqual(released.map((j) => [j.id, j.state]), [[j2.id, 'leased']], 'its jobs as they were');
    assert.deepEqual([(await engine.getJob(j2.id))!.state, (await engine.getJob(j2.id))!.error], ['queued', 'node silent']);

    assert.ok(await engine.leaseCopy(j1.id, 'n7', LEASE));
    const carried = (await engine.failJob(j1.id, { id: 'n4', vramMb: PROC.vramMb }, CRASH))!;
    assert.deepEqual([carried.job.state, carried.job.node_id, carried.job.copy_node_id], ['leased', 'n7', null], 'the copy carries on when its holder fails');
    assert.deepEqual(await engine.exclusions(j1.id), ['n4']);
    assert.ok(await engine.leaseCopy(j1.id, 'n8', LEASE));
    await engine.requeue([j1.id], 'asked');
    assert.deepEqual([(await engine.getJob(j1.id))!.state, (await engine.getJob(j1.id))!.copy_node_id], ['queued', null], 'a requeue ends the copy too');
    await engine.dropCopy(j1.id);
    await assertCountsExact(engine, 'sw-cp', 3, { queued: 2, done: 1 });
  });
}

const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);
const H3 = '3'.repeat(64);
const GIB = 1024 ** 3;

function modelsOf(state: Partial<NodeModelState> | undefined, holders: Record<string, number> = {}): PickModels {
  return {
    state: state && { cached: [], loaded: '', downloads: [], bytesPerS: 0, ...state },
    holderCounts: new Map(Object.entries(holders)),
  };
}

export function modelConformance(withFixture: WithFixture): void {
  withFixture("registry models: the sweep whose model is loaded, then held, then to be fetched; no fetch when the model's holders would finish first", async ({ engine }, clock) => {
    const registry = async (id: string, hash: string) => {
      await engine.createSweep({ name: id, spec: {}, priority: 0, backend: 'procedural', model: id, modelHash: hash, modelBytes: GIB }, newJobs(id, 2, { model: id }), id);
      clock.t += 1;
    };
    await registry('s1', H1);
    await registry('s2', H2);
    await registry('s3', H3);
    await engine.createSweep({ name: 's4', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('s4', 2), 's4');
    const pick = async (node: string, models: PickModels | undefined, caps: NodeCaps = PROC) => (await engine.leaseNext(node, caps, LEASE, models))!;
    const loaded = await pick('x', modelsOf({ loaded: H2, cached: [H3] }));
    assert.equal(loaded.sweep_id, 's2', 'loaded beats the older sweeps');
    assert.equal(loaded.model_hash, H2, "the job carries its sweep's hash to the node");
    assert.equal((await pick('y', modelsOf({ cached: [H3] }))).sweep_id, 's3', 'held beats to be fetched');
    assert.equal((await pick('z', modelsOf({ downloads: [{ hash: H1, name: 's1', bytesDone: 1, bytesTotal: 2 }] }))).sweep_id, 's1', 'a download in progress counts as held');
    // Three other nodes hold H1 and one each H2 and H3: their queued jobs (one each, 5 s assumed) go before a 1 GiB fetch (~20 s) would end.
    const crowded = { [H1]: 3, [H2]: 1, [H3]: 1 };
    assert.equal((await pick('w', modelsOf(undefined, crowded))).sweep_id, 's4', 'no fetch worth starting: the name-only sweep');
    assert.equal((await pick('v', modelsOf(undefined, crowded), { ...PROC, models: ['m1'] })).sweep_id, 's4');
    assert.equal(await pick('u', modelsOf(undefined, crowded)), undefined, 'nothing worth fetching is left');
    // The node itself is one of the holders: it holds the model, so it takes the job.
    assert.equal((await pick('t', modelsOf({ cached: [H1] }, { [H1]: 4 }))).sweep_id, 's1');
    assert.equal((await pick('q', modelsOf(undefined, {}))).sweep_id, 's2', 'with no holders anywhere a fetch is always worth it');
    assert.equal((await engine.leaseNext('p', PROC, LEASE))!.sweep_id, 's3', 'nor when the caller knows of no models');
    assert.equal(await engine.leaseNext('p', PROC, LEASE), undefined);
  });
}

/** A subscriber's wakes, and promises that settle once they match (no timers: wakes are events). */
class Heard {
  readonly wakes: Wake[] = [];
  private waiters: { pred: (ws: Wake[]) => boolean; resolve: () => void }[] = [];
  readonly listener = (w: Wake): void => {
    this.wakes.push(w);
    this.waiters = this.waiters.filter((x) => (x.pred(this.wakes) ? (x.resolve(), false) : true));
  };

  until(pred: (ws: Wake[]) => boolean): Promise<void> {
    return pred(this.wakes) ? Promise.resolve() : new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  clear(): void {
    this.wakes.length = 0;
  }
}

const anyJobs = (ws: Wake[]) => ws.some((w) => w.jobs);
const anyOutbox = (ws: Wake[]) => ws.some((w) => w.outbox);

export function wakeConformance(withFixture: WithFixture): void {
  withFixture('wake-ups: another connection committing new jobs, returned jobs or outbox rows wakes every subscriber; a lease alone does not', async ({ engine, another }) => {
    const other = await another();
    const first = new Heard();
    const second = new Heard();
    const unsubscribe = await engine.subscribe(first.listener);
    const unsubscribeSecond = await engine.subscribe(second.listener);

    await other.createSweep({ name: 'w', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('wk', 2), 'sw-wk');
    await first.until((ws) => anyJobs(ws) && anyOutbox(ws));
    await second.until((ws) => anyJobs(ws) && anyOutbox(ws));
    first.clear();
    const job = (await other.leaseNext('n1', PROC, LEASE))!;
    // Wakes arrive in commit order: once the outbox row's has, the lease's would have too.
    await other.appendEvent('test.event', 'm-1', {});
    await first.until(anyOutbox);
    assert.equal(anyJobs(first.wakes), false, 'a lease queues nothing');
    first.clear();
    await other.requeue([job.id], 'asked');
    await first.until(anyJobs);

    await unsubscribe();
    first.clear();
    second.clear();
    await other.appendEvent('test.event', 'm-2', {});
    // The second subscriber shares the first one's connection and order: once it heard, the first would have.
    await second.until(anyOutbox);
    assert.deepEqual(first.wakes, [], 'an unsubscribed listener hears nothing more');
    await unsubscribeSecond();
  });
}

const cost = (gpuMs: number, energyJoules?: number, gpuName = 'NVIDIA H200') => ({
  gpuMs, energyMeasured: energyJoules !== undefined, energyJoules: energyJoules ?? 0, gpuName, driverVersion: '550.54.15',
});
const costReport = (c: ReturnType<typeof cost>, skipped = false) => ({ renderMs: c.gpuMs, skipped, cost: create(JobCostSchema, c) });

export function costConformance(withFixture: WithFixture): void {
  withFixture('costs: a report counts once per job and node, a second node counts too, skips and unknown jobs not at all; sums per sweep and node and per node', async ({ engine }) => {
    await engine.createSweep({ name: 'a', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('ca', 3), 'sa');
    await engine.createSweep({ name: 'b', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('cb', 1), 'sb');
    const { costs } = engine;
    assert.deepEqual(await costs.record(jobId('sa', 0), 'n1', costReport(cost(2_000, 500))), { recorded: true });
    assert.deepEqual(await costs.record(jobId('sa', 0), 'n1', costReport(cost(2_000, 500))), { recorded: false }, 'sent again after a reconnect');
    await costs.record(jobId('sa', 0), 'n2', costReport(cost(3_000, 600.5, 'NVIDIA A10')));
    await costs.record(jobId('sa', 1), 'n1', costReport(cost(1_000)));
    assert.deepEqual(await costs.record(jobId('sa', 2), 'n1', costReport(cost(0), true)), { recorded: false }, 'a skip rendered nothing');
    assert.deepEqual(await costs.record('sa-999999', 'n1', costReport(cost(5))), { recorded: false }, 'no such job');
    const implausible = await costs.record(jobId('sb', 0), 'n1', costReport(cost(7_000, 1e12)));
    assert.ok(implausible.recorded && /not a plausible draw/.test(implausible.implausible ?? ''), 'recorded, its energy not believed');
    assert.deepEqual(
      (await costs.sweepSums('sa')).map((r) => [r.node_id, r.name, r.renders, r.gpu_ms, r.measured_renders, r.energy_joules, r.gpu_name, r.driver_version]),
      [
        ['n1', null, 2, 3_000, 1, 500, 'NVIDIA H200', '550.54.15'],
        ['n2', null, 1, 3_000, 1, 600.5, 'NVIDIA A10', '550.54.15'],
      ],
    );
    assert.deepEqual(await costs.nodeSums(), [
      { node_id: 'n1', renders: 3, gpu_ms: 10_000, measured_renders: 1, energy_joules: 500 },
      { node_id: 'n2', renders: 1, gpu_ms: 3_000, measured_renders: 1, energy_joules: 600.5 },
    ]);
    assert.deepEqual(await costs.jobCosts(jobId('sa', 1)), [{ node_id: 'n1', gpu_ms: 1_000, energy_joules: null, gpu_name: 'NVIDIA H200', driver_version: '550.54.15' }]);
    assert.deepEqual(await costs.jobCosts(jobId('sb', 0)), [{ node_id: 'n1', gpu_ms: 7_000, energy_joules: null, gpu_name: 'NVIDIA H200', driver_version: '550.54.15' }]);
  });
}

export function shareConformance(withFixture: WithFixture): void {
  withFixture('shares: images in album order (a repeat keeps its first place), live until they expire, listed per owner newest first, deleted only by their owner', async ({ engine }, clock) => {
    const { shares } = engine;
    const t0 = clock.t;
    const a = await shares.create({ title: 'favorites', renderKeys: ['rk-3', 'rk-1', 'rk-3', 'rk-2'], expiresAt: t0 + 1_000 });
    assert.match(a.id, /^sh_[A-Za-z0-9_-]{16}$/);
    assert.deepEqual({ ...a, id: '' }, { id: '', owner: 'local', title: 'favorites', created_at: t0, expires_at: t0 + 1_000, images: 3 });
    assert.deepEqual(await shares.renderKeys(a.id), ['rk-3', 'rk-1', 'rk-2']);
    assert.equal(await shares.holds(a.id, 'rk-1'), true);
    assert.equal(await shares.holds(a.id, 'rk-9'), false);
    clock.t += 1;
    const b = await shares.create({ title: 'sweep sw-x', renderKeys: ['rk-9'], expiresAt: t0 + 5_000, owner: 'alice' });
    clock.t += 1;
    const c = await shares.create({ title: 'none', renderKeys: [], expiresAt: t0 + 5_000 });
    assert.deepEqual((await shares.list()).map((s) => s.id), [c.id, a.id]);
    assert.deepEqual((await shares.list('alice')).map((s) => [s.id, s.images]), [[b.id, 1]]);
    assert.deepEqual((await shares.listAll()).map((s) => s.id), [c.id, b.id, a.id]);
    assert.equal((await shares.live(a.id))?.id, a.id);
    clock.t = t0 + 1_000;
    assert.equal(await shares.live(a.id), undefined, 'expired');
    assert.equal((await shares.get(a.id))?.id, a.id, 'kept until pruned');
    assert.equal(await shares.delete(b.id), false, "not the local user's");
    assert.equal(await shares.delete(b.id, 'alice'), true);
    assert.equal(await shares.get(b.id), undefined);
    assert.equal(await shares.holds(b.id, 'rk-9'), false, 'its images went with it');
    assert.equal(await shares.pruneExpired(), 1);
    assert.deepEqual((await shares.listAll()).map((s) => s.id), [c.id]);
    assert.deepEqual(await shares.renderKeys(a.id), []);
  });
}
