/**
 * The Store engine conformance suite: one set of test bodies, run against
 * every engine (sqlite.test.ts, postgres.test.ts), so both keep the same
 * contract: the job lifecycle, counters exact after every transition, the
 * scheduler's order, exclusions and backoff, leases, concurrent picks and
 * outbox claims from two connections, and leadership passing on when its
 * holder's connection dies. Time is the fixture's clock, never the wall's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SUBJECTS, imageKey } from '@nightshift/common';
import { jobId } from '../store/rows.js';
import type { NodeCaps } from '../placement.js';
import type { StoreEngine } from './engine.js';
import { LEASE, PROC, assertCountsExact, drainEvents, newJobs, report } from './conformance-helpers.js';
import { controlConformance } from './conformance-control.js';
import { sameTurnConformance } from './conformance-same-turn.js';
import { sweepPartsConformance } from './conformance-sweep-parts.js';
import { changeConformance, modelHolderConformance, nodeConformance, nodeOwnershipConformance, webhookConformance } from './conformance-nodes.js';
import { galleryConformance, listingConformance, peopleConformance, quotaConformance, capConformance, retentionConformance, retentionDutyConformance } from './conformance-listings.js';
import { copyConformance, costConformance, modelConformance, requeueConformance, shareConformance, userConformance, wakeConformance } from './conformance-parity.js';

export interface Clock {
  t: number;
}

export interface EngineFixture {
  engine: StoreEngine;
  /** Another connection onto the same database, as a second replica (or, on SQLite, another part of the one process) has. */
  another(): Promise<StoreEngine>;
  /** The engine's connections die as its process would (no polite close). */
  kill(engine: StoreEngine): Promise<void>;
  close(): Promise<void>;
}

export type WithFixture = (title: string, body: (f: EngineFixture, clock: Clock) => Promise<void>) => void;

export interface EngineHarness {
  /** A fresh, empty database whose engines read `clock`, with maxAttempts 3 and blocklistAfter 3. */
  fresh(clock: Clock): Promise<EngineFixture>;
}

export function storeEngineConformance(name: string, harness: EngineHarness, opts: { skip?: string | undefined } = {}): void {
  describe(`store engine conformance: ${name}`, { skip: opts.skip }, () => {
    const withFixture: WithFixture = (title, body) =>
      test(title, async () => {
        const clock = { t: 1_700_000_000_000 };
        const f = await harness.fresh(clock);
        try {
          await body(f, clock);
        } finally {
          await f.close();
        }
      });

    withFixture('ping: the database answers a live engine; a closed engine refuses (closing twice is harmless)', async ({ engine, another }) => {
      await engine.ping();
      const other = await another();
      await other.ping();
      await other.close();
      await assert.rejects(other.ping(), /closed/);
      await assert.rejects(other.lead('after-close'), /closed/, 'a closed engine leads nothing');
      await engine.ping();
    });

    withFixture('a sweep\'s jobs may come from a generator, taken as they are made (batches beyond one insert), counted into its total', async ({ engine }) => {
      const made: number[] = [];
      const jobs = newJobs('gen', 12_345);
      function* lazily() {
        for (const j of jobs) {
          made.push(j.index);
          yield j;
        }
      }
      const sweep = await engine.createSweep({ name: 'gen', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, lazily(), 'sw-gen');
      assert.equal(made.length, 12_345);
      assert.equal(sweep.total, 12_345);
      assert.equal((await engine.counts('sw-gen')).queued, 12_345);
      assert.equal((await engine.listings.jobs('sw-gen', ['queued'])).length, 12_345);
    });

    withFixture('a sweep from submit to done: rows, counters after every step, and its events in order', async ({ engine }, clock) => {
      const sweep = await engine.createSweep({ name: 'night', spec: { prompts: ['a'] }, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('life', 3), 'sw-life');
      assert.equal(sweep.id, 'sw-life');
      assert.equal(sweep.status, 'queued');
      assert.equal(sweep.total, 3);
      assert.equal(sweep.created_at, clock.t);
      await assertCountsExact(engine, 'sw-life', 3, { queued: 3 });
      const first = (await engine.getJob(jobId('sw-life', 0)))!;
      assert.equal(first.render_key, 'rk-life-0');
      assert.equal(first.seed, 1000);
      assert.deepEqual(JSON.parse(first.params_json), { steps: 4 });
      assert.equal(first.state, 'queued');

      const leased = (await engine.leaseNext('n1', PROC, LEASE))!;
      assert.equal(leased.id, jobId('sw-life', 0), 'the first job by index');
      assert.equal(leased.state, 'leased');
      assert.equal(leased.node_id, 'n1');
      assert.equal(leased.attempts, 1);
      assert.equal(leased.lease_expires_at, clock.t + LEASE);
      assert.equal((await engine.getSweep('sw-life'))!.status, 'running');
      await assertCountsExact(engine, 'sw-life', 3, { queued: 2, running: 1 });

      clock.t += 5_000;
      const done = await engine.completeJob(leased.id, 'n1', report(leased));
      assert.deepEqual(done, { accepted: true, cancelOn: [] });
      const after = (await engine.getJob(leased.id))!;
      assert.equal(after.state, 'done');
      assert.equal(after.image_key, imageKey('rk-life-0'));
      assert.equal(after.finished_at, clock.t);
      assert.equal(after.announced, 1);
      await assertCountsExact(engine, 'sw-life', 3, { queued: 2, done: 1 });
      // A second report of the same job is audited, not counted again.
      assert.deepEqual(await engine.completeJob(leased.id, 'n1', report(leased)), { accepted: false, cancelOn: [] });
      await assertCountsExact(engine, 'sw-life', 3, { queued: 2, done: 1 });

      const second = (await engine.leaseNext('n1', PROC, LEASE))!;
      const third = (await engine.leaseNext('n2', PROC, LEASE))!;
      assert.deepEqual([second.id, third.id], [jobId('sw-life', 1), jobId('sw-life', 2)]);
      assert.equal(await engine.leaseNext('n3', PROC, LEASE), undefined, 'nothing left to pick');
      await assertCountsExact(engine, 'sw-life', 3, { done: 1, running: 2 });
      await engine.completeJob(second.id, 'n1', report(second, true));
      await assertCountsExact(engine, 'sw-life', 3, { done: 1, skipped: 1, running: 1 });
      assert.equal((await engine.getSweep('sw-life'))!.status, 'running');
      await engine.completeJob(third.id, 'n2', report(third));
      await assertCountsExact(engine, 'sw-life', 3, { done: 2, skipped: 1 });
      const finished = (await engine.getSweep('sw-life'))!;
      assert.equal(finished.status, 'done');
      assert.equal(finished.finished_at, clock.t);

      const events = await drainEvents(engine);
      assert.deepEqual(
        events.map((e) => [e.subject, e.msg_id]),
        [
          [SUBJECTS.sweepCreated, 'sweep.created.sw-life'],
          [SUBJECTS.imageRendered, 'rk-life-0'],
          // The skipped job's image had never been announced: its skip announces it.
          [SUBJECTS.imageRendered, 'rk-life-1'],
          [SUBJECTS.imageRendered, 'rk-life-2'],
          [SUBJECTS.sweepDone, 'sweep.done.sw-life'],
        ],
      );
      assert.deepEqual(events[0]!.payload, { sweepId: 'sw-life', name: 'night', kind: 'render', jobs: 3, createdAt: new Date(1_700_000_000_000).toISOString() });
      assert.deepEqual(events[1]!.payload, {
        renderKey: 'rk-life-0', key: imageKey('rk-life-0'), sweepId: 'sw-life', jobId: jobId('sw-life', 0), prompt: 'a life 0', seed: 1000, params: { steps: 4 },
        backend: 'procedural', model: 'm1', node: 'n1', renderMs: 1_234, createdAt: new Date(1_700_000_005_000).toISOString(),
      });
      assert.deepEqual(events[4]!.payload, {
        sweepId: 'sw-life', status: 'done', counts: { queued: 0, running: 0, done: 2, failed: 0, skipped: 1, cancelled: 0 }, finishedAt: new Date(clock.t).toISOString(),
      });
    });

    withFixture('reports are refused from a node that never held the job or with keys not its own; a late report from the last holder wins', async ({ engine }, clock) => {
      await engine.createSweep({ name: 'r', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('ref', 1), 'sw-ref');
      const job = (await engine.leaseNext('n1', PROC, LEASE))!;
      assert.equal((await engine.completeJob(job.id, 'intruder', report(job))).refused?.reason, 'not held');
      assert.equal((await engine.completeJob(job.id, 'n1', { ...report(job), imageKey: 'images/other.png' })).refused?.reason, 'wrong key');
      assert.equal((await engine.completeJob('sw-ref-999999', 'n1', report(job))).refused?.reason, 'unknown job');
      await assertCountsExact(engine, 'sw-ref', 1, { running: 1 });
      clock.t += LEASE + 1;
      assert.deepEqual((await engine.expireLeases()).map((j) => [j.id, j.node_id]), [[job.id, 'n1']]);
      await assertCountsExact(engine, 'sw-ref', 1, { queued: 1 });
      const again = (await engine.leaseNext('n2', PROC, LEASE))!;
      assert.equal(again.attempts, 2);
      // n1's report crossed its lease moving to n2: the image is stored, so it is accepted and n2 told to stop.
      assert.deepEqual(await engine.completeJob(job.id, 'n1', report(job)), { accepted: true, cancelOn: ['n2'] });
      await assertCountsExact(engine, 'sw-ref', 1, { done: 1 });
    });

    withFixture('the pick order: priority, then fair share, then a loaded model, then the oldest; backend and VRAM must fit', async ({ engine }, clock) => {
      await engine.createSweep({ name: 'old', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('a', 4), 'sw-a');
      clock.t += 1;
      await engine.createSweep({ name: 'new', spec: {}, priority: 0, backend: 'procedural', model: 'm2' }, newJobs('b', 4, { model: 'm2' }), 'sw-b');
      clock.t += 1;
      await engine.createSweep({ name: 'big', spec: {}, priority: 5, backend: 'procedural', model: 'm1' }, newJobs('c', 1, { minVramMb: 20_000 }), 'sw-c');
      await engine.createSweep({ name: 'exec', spec: {}, priority: 9, backend: 'exec', model: 'm1' }, newJobs('d', 1, { backend: 'exec' }), 'sw-d');
      const pick = async (node: string, caps: NodeCaps) => (await engine.leaseNext(node, caps, LEASE))?.id;
      // sw-d needs exec, sw-c needs 20 GB: an 8 GB procedural card gets the oldest of the equal sweeps.
      assert.equal(await pick('n1', PROC), 'sw-a-000000');
      // Fair share: sw-a runs one, sw-b none.
      assert.equal(await pick('n1', PROC), 'sw-b-000000');
      // Equal running counts: the sweep whose model the node has loaded.
      assert.equal(await pick('n2', { ...PROC, models: ['m2'] }), 'sw-b-000001');
      assert.equal(await pick('n2', PROC), 'sw-a-000001');
      assert.equal(await pick('big', { ...PROC, vramMb: 24_576 }), 'sw-c-000000', 'the higher priority first, for a card it fits');
      assert.equal(await pick('x', { ...PROC, backends: ['exec'] }), 'sw-d-000000');
      assert.equal(await pick('x', { ...PROC, backends: [] }), undefined);
      await assertCountsExact(engine, 'sw-a', 4, { queued: 2, running: 2 });
      await assertCountsExact(engine, 'sw-b', 4, { queued: 2, running: 2 });
    });

    withFixture('a failure excludes its node, backs off, raises the VRAM floor on OOM; the last attempt fails the job and settles the sweep', async ({ engine }, clock) => {
      await engine.createSweep({ name: 'f', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('f', 1), 'sw-f');
      const job = (await engine.leaseNext('n1', PROC, LEASE))!;
      const r1 = (await engine.failJob(job.id, { id: 'n1', vramMb: 8_192 }, { error: 'oom', logTail: 'tail', outOfMemory: true }))!;
      assert.equal(r1.blocklisted, false);
      assert.equal(r1.job.state, 'queued');
      assert.equal(r1.job.node_id, null);
      assert.equal(r1.job.min_vram_mb, 8_193);
      assert.equal(r1.job.not_before, clock.t + 1_000);
      assert.equal(r1.job.log_tail, 'tail');
      assert.deepEqual(await engine.exclusions(job.id), ['n1']);
      await assertCountsExact(engine, 'sw-f', 1, { queued: 1 });
      const big: NodeCaps = { ...PROC, vramMb: 16_384 };
      assert.equal(await engine.leaseNext('n2', big, LEASE), undefined, 'in backoff');
      clock.t += 1_000;
      assert.equal(await engine.leaseNext('n1', big, LEASE), undefined, 'excluded node');
      assert.equal(await engine.leaseNext('n2', PROC, LEASE), undefined, 'card below the raised floor');
      const second = (await engine.leaseNext('n2', big, LEASE))!;
      assert.equal(second.attempts, 2);
      await engine.failJob(job.id, { id: 'n2', vramMb: 16_384 }, { error: 'crash', logTail: '', outOfMemory: false });
      assert.deepEqual(await engine.exclusions(job.id), ['n1', 'n2']);
      clock.t += 2_000;
      assert.equal(await engine.failJob(job.id, { id: 'n3', vramMb: 16_384 }, { error: 'x', logTail: '', outOfMemory: false }), undefined, 'not leased: nothing to fail');
      const third = (await engine.leaseNext('n3', big, LEASE))!;
      assert.equal(third.attempts, 3);
      const last = (await engine.failJob(job.id, { id: 'n3', vramMb: 16_384 }, { error: 'crash again', logTail: '', outOfMemory: false }))!;
      assert.equal(last.job.state, 'failed');
      assert.equal(last.job.finished_at, clock.t);
      assert.deepEqual(await engine.exclusions(job.id), [], "a final job's exclusions go");
      await assertCountsExact(engine, 'sw-f', 1, { failed: 1 });
      assert.equal((await engine.getSweep('sw-f'))!.status, 'failed', 'no image came out of it');
      const events = await drainEvents(engine);
      assert.deepEqual(events.map((e) => e.subject), [SUBJECTS.sweepCreated, SUBJECTS.sweepDone]);
    });

    withFixture('a node failing three times in a sweep is blocklisted for it', async ({ engine }, clock) => {
      await engine.createSweep({ name: 'b', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('bl', 5), 'sw-bl');
      const fail = { error: 'bad', logTail: '', outOfMemory: false };
      const blocklisted: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        const job = (await engine.leaseNext('flaky', PROC, LEASE))!;
        blocklisted.push((await engine.failJob(job.id, { id: 'flaky', vramMb: 8_192 }, fail))!.blocklisted);
        clock.t += 60_000;
      }
      assert.deepEqual(blocklisted, [false, false, true]);
      assert.equal(await engine.leaseNext('flaky', PROC, LEASE), undefined);
      assert.ok(await engine.leaseNext('good', PROC, LEASE));
      await assertCountsExact(engine, 'sw-bl', 5, { queued: 4, running: 1 });
    });

    withFixture('leases: renewed only by their holder, expired ones requeued, requeue with a reason', async ({ engine }, clock) => {
      await engine.createSweep({ name: 'l', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('l', 3), 'sw-l');
      const a = (await engine.leaseNext('n1', PROC, LEASE))!;
      const b = (await engine.leaseNext('n2', PROC, LEASE))!;
      const c = (await engine.leaseNext('n2', PROC, LEASE))!;
      clock.t += 20_000;
      await engine.renewLeases('n1', [a.id, b.id], LEASE);
      assert.equal((await engine.getJob(a.id))!.lease_expires_at, clock.t + LEASE);
      assert.equal((await engine.getJob(b.id))!.lease_expires_at, b.lease_expires_at, "n1 cannot renew n2's lease");
      await engine.requeue([c.id], 'node asked');
      const requeued = (await engine.getJob(c.id))!;
      assert.equal(requeued.state, 'queued');
      assert.equal(requeued.error, 'node asked');
      assert.equal(requeued.prev_node_id, 'n2');
      await assertCountsExact(engine, 'sw-l', 3, { queued: 1, running: 2 });
      clock.t += 10_001;
      assert.deepEqual((await engine.expireLeases()).map((j) => j.id), [b.id]);
      assert.deepEqual(await engine.expireLeases(), [], 'expired once');
      await assertCountsExact(engine, 'sw-l', 3, { queued: 2, running: 1 });
      assert.equal((await engine.getJob(a.id))!.state, 'leased');
    });

    withFixture('two connections racing 200 picks lease 200 distinct jobs', async ({ engine, another }) => {
      const other = await another();
      const total = 200;
      await engine.createSweep({ name: 'race', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('race', total + 10), 'sw-race');
      const picks = await Promise.all(Array.from({ length: total }, (_, i) => (i % 2 ? other : engine).leaseNext(`node-${i % 16}`, PROC, LEASE)));
      const ids = picks.map((j) => j?.id);
      assert.equal(ids.filter((id) => id === undefined).length, 0, 'every pick got a job');
      assert.equal(new Set(ids).size, total, 'no job leased twice');
      for (const j of picks) assert.equal((await engine.getJob(j!.id))!.node_id, j!.node_id, 'each job held by the node it was leased to');
      await assertCountsExact(engine, 'sw-race', total + 10, { queued: 10, running: total });
    });

    withFixture('two connections changing jobs at once keep the counters exact, render each image once and settle the sweep once', async ({ engine, another }, clock) => {
      const other = await another();
      const total = 120;
      await engine.createSweep({ name: 'mix', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('mix', total), 'sw-mix');
      let picks = 0;
      const fail = { error: 'flaky', logTail: '', outOfMemory: false };
      // What happens to a job depends on its index and attempt only, so every run takes the same paths.
      const work = async (e: StoreEngine) => {
        for (;;) {
          const node = `n-${picks++}`;
          const job = await e.leaseNext(node, PROC, LEASE);
          if (!job) return;
          const kind = job.idx % 10;
          if (kind === 3 && job.attempts === 1) await e.failJob(job.id, { id: node, vramMb: PROC.vramMb }, fail);
          else if (kind === 7 && job.attempts <= 2) await e.failJob(job.id, { id: node, vramMb: PROC.vramMb }, fail);
          else if (kind === 5 && job.attempts === 1) await e.requeue([job.id], 'node asked');
          else if (kind === 8 && job.attempts === 1) continue; // its node goes silent: the lease expires
          else assert.equal((await e.completeJob(job.id, node, report(job, job.idx % 20 === 9))).accepted, true);
        }
      };
      for (let round = 0; round < 10 && (await engine.getSweep('sw-mix'))!.status !== 'done'; round++) {
        await Promise.all(Array.from({ length: 8 }, (_, w) => work(w % 2 ? other : engine)));
        clock.t += 120_000; // past every lease and backoff
        await Promise.all([engine.expireLeases(), other.expireLeases()]);
        await assertCountsExact(engine, 'sw-mix', total);
      }
      await assertCountsExact(engine, 'sw-mix', total, { done: total - total / 20, skipped: total / 20 });
      assert.equal((await engine.getSweep('sw-mix'))!.status, 'done');
      const events = await drainEvents(other);
      assert.equal(events.filter((e) => e.subject === SUBJECTS.sweepDone).length, 1, 'settled once');
      const images = events.filter((e) => e.subject === SUBJECTS.imageRendered).map((e) => e.msg_id);
      assert.equal(images.length, total);
      assert.equal(new Set(images).size, total, 'each image announced once');
      assert.equal((await engine.getJob(jobId('sw-mix', 7)))!.attempts, 3);
    });

    withFixture('outbox: every event claimed exactly once across two connections; a lapsed claim is taken again', async ({ engine, another }, clock) => {
      const other = await another();
      for (let i = 0; i < 60; i++) await engine.appendEvent('test.event', `m-${i}`, { i });
      const claimed: number[][] = [[], []];
      await Promise.all(
        [engine, other].map(async (e, k) => {
          for (;;) {
            const batch = await e.claimEvents(7, 60_000);
            if (!batch.length) return;
            claimed[k]!.push(...batch.map((r) => r.id));
          }
        }),
      );
      const all = [...claimed[0]!, ...claimed[1]!];
      assert.equal(all.length, 60);
      assert.equal(new Set(all).size, 60, 'no event claimed twice');
      await engine.markPublished(claimed[0]!);
      clock.t += 60_001;
      // The other connection's claims lapsed unpublished (its replica died): they are claimed again, oldest first.
      const again = await engine.claimEvents(100, 60_000);
      assert.deepEqual(again.map((r) => r.id), [...claimed[1]!].sort((a, b) => a - b));
      assert.deepEqual(again.map((r) => JSON.parse(r.payload) as unknown), again.map((r) => ({ i: Number(r.msg_id.slice(2)) })));
      await other.markPublished(again.map((r) => r.id));
      clock.t += 60_001;
      assert.deepEqual(await other.claimEvents(100, 60_000), [], 'published events are never claimed again');
    });

    withFixture("leadership: one holder per duty; it passes on when released or when the holder's connection dies", async ({ engine, another, kill }) => {
      const other = await another();
      const raced = await Promise.all([engine.lead('pruning'), engine.lead('pruning'), other.lead('pruning')]);
      assert.equal(raced.filter((l) => l !== undefined).length, 1, 'one holder of a duty raced for');
      const mine = (await engine.lead('node-timeouts'))!;
      assert.ok(mine.held());
      assert.equal(await other.lead('node-timeouts'), undefined);
      assert.equal(await engine.lead('node-timeouts'), undefined, 'held already, also by this engine');
      const outbox = (await other.lead('outbox'))!;
      assert.ok(outbox, 'another duty is free');
      await mine.release();
      assert.equal(mine.held(), false);
      const theirs = (await other.lead('node-timeouts'))!;
      assert.ok(theirs.held());
      assert.equal(await engine.lead('node-timeouts'), undefined);
      await kill(other);
      await theirs.lost;
      await outbox.lost;
      assert.equal(theirs.held(), false);
      // The holder's session is gone, so its locks are: the duty is free again.
      const taken = await engine.lead('node-timeouts');
      assert.ok(taken?.held(), 'taken over once the holder died');
      assert.ok(await engine.lead('outbox'));
    });

    userConformance(withFixture);
    requeueConformance(withFixture);
    copyConformance(withFixture);
    modelConformance(withFixture);
    wakeConformance(withFixture);
    costConformance(withFixture);
    sameTurnConformance(withFixture);
    sweepPartsConformance(withFixture);
    shareConformance(withFixture);
    controlConformance(withFixture);
    nodeConformance(withFixture);
    nodeOwnershipConformance(withFixture);
    webhookConformance(withFixture);
    modelHolderConformance(withFixture);
    changeConformance(withFixture);
    listingConformance(withFixture);
    peopleConformance(withFixture);
    quotaConformance(withFixture);
    capConformance(withFixture);
    retentionConformance(withFixture);
    retentionDutyConformance(withFixture);
    galleryConformance(withFixture);
  });
}
