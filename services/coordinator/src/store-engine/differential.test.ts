/**
 * SQLite and PostgreSQL, step for step: a seeded random night (picks by
 * nodes of different cards, backends, loaded and cached registry models, for
 * sweeps of three people of different weights; completions, skips, failures
 * with and without OOM, requeues with and without a refund, models a node
 * could not fetch, straggler copies finishing and failing, renewals, nodes
 * going silent or marked down, expiring leases, the clock moving on) applied to both engines must give the same answer at
 * every step, the same counters, rows, listings, events and webhook deliveries. The
 * conformance suite pins each rule by example; this catches the cases in
 * between (tie-breaks, backoff edges, blocklists) where the two could drift.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { imageKey, mulberry32, thumbKey } from '@nightshift/common';
import { postgresForFile, tempDir } from '@nightshift/devfarm';
import type { NodeCaps } from '../placement.js';
import type { JobRow, NewJob, PickModels, StoreEngine, SweepRow } from './engine.js';
import { PostgresEngine } from './postgres.js';
import { SqliteEngine } from './sqlite.js';

const { skip, server } = postgresForFile();

const H4 = '4'.repeat(64);
const H5 = '5'.repeat(64);
const modelState = (loaded: string, cached: string[]) => ({ loaded, cached, downloads: [], bytesPerS: 0 });
// Two nodes elsewhere hold H4: a node without it fetches it only while the queue is long enough.
const HOLDERS = new Map([[H4, 2]]);
const NODES: { id: string; caps: NodeCaps; models: PickModels }[] = [
  { id: 'big', caps: { backends: ['procedural', 'exec'], models: ['m1'], vramMb: 24_576 }, models: { state: modelState(H4, [H5]), holderCounts: HOLDERS } },
  { id: 'mid', caps: { backends: ['procedural'], models: ['m2'], vramMb: 12_288 }, models: { state: modelState('', [H5]), holderCounts: HOLDERS } },
  { id: 'small', caps: { backends: ['procedural'], models: [], vramMb: 6_144 }, models: { state: undefined, holderCounts: HOLDERS } },
  { id: 'exec', caps: { backends: ['exec'], models: ['m1', 'm2'], vramMb: 16_384 }, models: { state: modelState(H5, []), holderCounts: HOLDERS } },
  { id: 'spare', caps: { backends: ['procedural', 'exec'], models: [], vramMb: 24_576 }, models: { state: undefined, holderCounts: HOLDERS } },
];

function sweepJobs(tag: string, n: number, backend: string, model: string, random: () => number): NewJob[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    renderKey: `rk-${tag}-${i % Math.max(1, n - 3)}`, // a few repeated images: announced once
    prompt: `p ${tag} ${i}`,
    seed: i,
    params: { i },
    axes: {},
    backend,
    model,
    minVramMb: random() < 0.2 ? 10_000 : 0,
  }));
}

/** A row as both engines can hold it (SQLite's tables have columns the PostgreSQL engine does not yet). */
function comparable(row: JobRow | SweepRow | undefined, columns: string[]): Record<string, unknown> | undefined {
  if (!row) return undefined;
  const values: Record<string, unknown> = { ...row };
  return Object.fromEntries(columns.map((c) => [c, values[c]]));
}

for (const seed of [11, 12, 13]) {
  test(`seed ${seed}: SQLite and PostgreSQL answer a random night identically`, { skip }, async (t) => {
    const clock = { t: 1_700_000_000_000 };
    const opts = { now: () => clock.t, maxAttempts: 3, blocklistAfter: 3 };
    const tmp = tempDir('nightshift-diff-');
    const lite = SqliteEngine.open(join(tmp.dir, 'c.sqlite'), opts);
    const pg = await PostgresEngine.open({ url: await server().createDatabase(`diff_${seed}`), ...opts });
    const engines: StoreEngine[] = [lite, pg];
    // `f` runs once per engine: anything random is drawn before it.
    const both = async <T>(f: (e: StoreEngine) => Promise<T>): Promise<T> => {
      const [a, b] = await Promise.all(engines.map(f));
      assert.deepEqual(b, a);
      return a!;
    };
    try {
      const random = mulberry32(seed);
      const pickOne = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
      const sweeps: { id: string; total: number }[] = [];
      await both((e) => e.addKey({ name: 'alice', admin: false, weight: 1, quotaImages: null }, 'ka').then((k) => !!k));
      await both((e) => e.addKey({ name: 'bob', admin: false, weight: 2, quotaImages: null }, 'kb').then((k) => !!k));
      const specs = [
        { backend: 'procedural', model: 'm1', priority: 0, n: 40, owner: 'alice' },
        { backend: 'procedural', model: 'm2', priority: 0, n: 30, owner: 'bob' },
        { backend: 'exec', model: 'm1', priority: 0, n: 20, owner: 'local' },
        { backend: 'procedural', model: 'm3', priority: 2, n: 10, owner: 'bob' },
        { backend: 'procedural', model: 'r4', priority: 0, n: 25, owner: 'alice', modelHash: H4, modelBytes: 2 ** 29 },
        { backend: 'procedural', model: 'r5', priority: 1, n: 15, owner: 'local', modelHash: H5, modelBytes: 2 ** 31 },
      ];
      // Webhooks per person (ids are random per engine, so each engine's are kept apart) and the nodes registered.
      const hooks = new Map<StoreEngine, string[]>();
      for (const e of engines) {
        const ids: string[] = [];
        for (const owner of ['local', 'alice', 'bob']) {
          const events = owner === 'bob' ? (['sweep.cancelled', 'node.down'] as const) : (['sweep.finished', 'sweep.failed'] as const);
          ids.push((await e.webhooks.createWebhook({ url: `https://hooks.test/${owner}`, events: [...events], secret: 's', format: 'json', owner })).id);
        }
        hooks.set(e, ids);
      }
      for (const node of NODES) await both((e) => e.nodes.upsertNode(node.id, `gpu-${node.id}`, node.caps));
      const sweepColumns = ['id', 'name', 'spec_json', 'status', 'priority', 'backend', 'total', 'created_at', 'finished_at', 'kind', 'model', 'model_hash', 'model_bytes', 'owner'];
      for (const [i, s] of specs.entries()) {
        const jobs = sweepJobs(`s${i}`, s.n, s.backend, s.model, random);
        const { n: _n, ...sweep } = s;
        await both(async (e) => comparable(await e.createSweep({ name: `s${i}`, spec: { i }, ...sweep }, jobs, `sw-${seed}-${i}`), sweepColumns));
        sweeps.push({ id: `sw-${seed}-${i}`, total: s.n });
        clock.t += 1;
      }
      const columns = Object.keys((await pg.getJob(`sw-${seed}-0-000000`))!);
      // Who holds what, as the engines say (read back after every change).
      const held = new Map<string, { nodeId: string; copy: string | null; job: JobRow }>();
      const sync = async (ids: Iterable<string>) => {
        for (const id of [...ids]) {
          const job = (await both(async (e) => comparable(await e.getJob(id), columns)) as unknown as JobRow);
          if (job.state === 'leased') held.set(id, { nodeId: job.node_id!, copy: job.copy_node_id, job });
          else held.delete(id);
        }
      };
      // The holder, or the copy when there is one and the coin says so.
      const someHolder = (h: { nodeId: string; copy: string | null }) => (h.copy && random() < 0.5 ? h.copy : h.nodeId);
      const vramOf = (nodeId: string) => NODES.find((n) => n.id === nodeId)!.caps.vramMb;
      // What the night actually did (both engines agreed on each): a night where nothing was leased would compare nothing.
      let didDown = false;
      let didCancel = false;
      const did = { leases: 0, completions: 0, copies: 0, failures: 0, cancelledWhileLeased: 0, markedDown: 0, requeuedByDown: 0 };
      for (let step = 0; step < 900; step++) {
        const r = random();
        if (r < 0.4) {
          const node = pickOne(NODES);
          const picked = await both(async (e) => comparable(await e.leaseNext(node.id, node.caps, 30_000, node.models), columns));
          if (picked) did.leases++;
          if (picked) await sync([picked.id as string]);
        } else if (r < 0.62 && held.size) {
          const [id, h] = pickOne([...held]);
          const skipped = random() < 0.2;
          const nodeId = someHolder(h);
          const outcome = await both((e) => e.completeJob(id, nodeId, { imageKey: imageKey(h.job.render_key), thumbKey: thumbKey(h.job.render_key), renderMs: 100 + step, skipped }));
          if (outcome.accepted) did.completions++;
          await sync([id]);
        } else if (r < 0.72 && held.size) {
          const [id, h] = pickOne([...held]);
          const nodeId = someHolder(h);
          const failure = { error: `e${step}`, logTail: 't', outOfMemory: random() < 0.3 };
          const failed = await both(async (e) => {
            const out = await e.failJob(id, { id: nodeId, vramMb: vramOf(nodeId) }, failure);
            return out && { job: comparable(out.job, columns), blocklisted: out.blocklisted };
          });
          if (failed) did.failures++;
          await sync([id]);
        } else if (r < 0.76 && held.size) {
          const [id] = pickOne([...held]);
          const refundAttempt = random() < 0.5;
          await both((e) => e.requeue([id], 'asked', { refundAttempt }));
          await sync([id]);
        } else if (r < 0.79 && held.size) {
          const [id, h] = pickOne([...held]);
          const nodeId = someHolder(h);
          await both(async (e) => comparable(await e.returnUnfetched(id, nodeId, `unfetched ${step}`), columns));
          await sync([id]);
        } else if (r < 0.85) {
          // An idle node asks for a straggler copy (ties broken by id on PostgreSQL only: copy a held job by id instead when they could differ).
          const node = pickOne(NODES);
          const [id] = held.size ? pickOne([...held]) : [undefined];
          if (id && (await both(async (e) => comparable(await e.leaseCopy(id, node.id, 30_000), columns)))) did.copies++;
          if (id) await sync([id]);
        } else if (r < 0.87 && held.size) {
          const [id] = pickOne([...held]);
          await both((e) => e.dropCopy(id));
          await sync([id]);
        } else if (r < 0.9) {
          const node = pickOne(NODES);
          const mine = [...held].filter(([, h]) => h.nodeId === node.id || h.copy === node.id).map(([id]) => id);
          await both(async (e) => (await e.leasedTo(node.id)).map((j) => j.id));
          await both((e) => e.renewLeases(node.id, mine, 30_000));
          await sync(mine);
        } else if (r < 0.91) {
          // A node holding work when there is one: going silent with nothing held tests little.
          const holding = NODES.filter((n) => [...held.values()].some((h) => h.nodeId === n.id || h.copy === n.id));
          const node = pickOne(holding.length ? holding : NODES);
          // Silent: released by the hub, or marked down (offline, node.down announced, webhooks told) and back at once.
          if (random() < 0.5) await both(async (e) => (await e.releaseNode(node.id, 'silent')).map((j) => j.id));
          else {
            did.requeuedByDown += (await both(async (e) => (await e.nodes.markNodeDown(node.id, `silent ${step}`)).map((j) => j.id))).length;
            did.markedDown++;
            clock.t += 1;
            await both((e) => e.nodes.upsertNode(node.id, `gpu-${node.id}`, node.caps));
          }
          await sync(held.keys());
        } else if (r < 0.92) {
          const sweep = pickOne(sweeps);
          const paused = random() < 0.6;
          await both((e) => e.setPaused(sweep.id, paused));
        } else if (r < 0.925) {
          const sweep = pickOne(sweeps);
          const priority = Math.floor(random() * 4) - 1;
          await both((e) => e.setPriority(sweep.id, priority));
        } else if (r < 0.93 && held.size) {
          const [id, h] = pickOne([...held]);
          // A job no card can take (placement's verdict): only a queued one fails.
          const queuedOne = `${h.job.sweep_id}-${String(Math.floor(random() * 10)).padStart(6, '0')}`;
          await both((e) => e.failQueuedJob(id, `too big ${step}`));
          await both((e) => e.failQueuedJob(queuedOne, `too big ${step}`));
          await sync([id]);
        } else {
          clock.t += Math.floor(random() * 20_000);
          await both(async (e) => (await e.expireLeases()).map((j) => j.id));
          await sync(held.keys());
        }
        // Once in the night a node holding work is marked down (whatever the coin said elsewhere): its leases go back.
        if (!didDown && step >= 200 && held.size) {
          didDown = true;
          const nodeId = [...held.values()][0]!.nodeId;
          did.requeuedByDown += (await both(async (e) => (await e.nodes.markNodeDown(nodeId, `down ${step}`)).map((j) => j.id))).length;
          did.markedDown++;
          clock.t += 1;
          await both((e) => e.nodes.upsertNode(nodeId, `gpu-${nodeId}`, NODES.find((n) => n.id === nodeId)!.caps));
          await sync(held.keys());
        }
        // Later the sweep with the most leased jobs is cancelled: they come back for their nodes to stop.
        if (!didCancel && step >= 500 && held.size) {
          didCancel = true;
          const leasedIn = (id: string) => [...held.values()].filter((h) => h.job.sweep_id === id).length;
          const victim = sweeps.reduce((best, sw) => (leasedIn(sw.id) > leasedIn(best.id) ? sw : best), sweeps[1]!);
          did.cancelledWhileLeased += (await both(async (e) => (await e.cancelSweep(victim.id)).map((j) => j.id))).length;
          await sync(held.keys());
        }
        if (step % 50 === 0) {
          for (const s of sweeps) await both((e) => e.counts(s.id));
          for (const user of ['local', 'alice', 'bob']) await both((e) => e.getUser(user).then((u) => ({ ...u, created_at: 0 })));
          for (const node of NODES) await both((e) => e.heldCount(node.id));
          for (const s of sweeps) await both(async (e) => ({ blocked: await e.blockedNodes(s.id), needs: await e.queuedRequirements(s.id) }));
          await both((e) => e.queuedWithExclusions(10_000));
          await both(async (e) => (await e.listings.listSweeps({ offset: 1, limit: 3 }, 'alice')).map((row) => comparable(row, sweepColumns)));
          await both(async (e) => [await e.listings.sweepCount(), await e.listings.sweepCount('bob')]);
          for (const s of sweeps) await both(async (e) => (await e.listings.jobs(s.id, ['queued', 'leased'], { offset: 2, limit: 5 })).map((j) => comparable(j, columns)));
        }
      }
      for (const s of sweeps) {
        await both(async (e) => comparable(await e.getSweep(s.id), sweepColumns));
        await both((e) => e.counts(s.id));
        for (let i = 0; i < s.total; i++) {
          const id = `${s.id}-${String(i).padStart(6, '0')}`;
          await both(async (e) => ({ row: comparable(await e.getJob(id), columns), excluded: await e.exclusions(id) }));
        }
      }
      for (const s of sweeps) for (let i = 0; i < s.total; i++) await both((e) => e.listings.results(`${s.id}-${String(i).padStart(6, '0')}`));
      await both((e) => e.nodes.listNodes());
      // Each person's webhook got the same deliveries (ids aside).
      let deliveries = 0;
      for (let h = 0; h < 3; h++) {
        deliveries += await both(async (e) =>
          (await e.webhooks.webhookDeliveries(hooks.get(e)![h]!, 1_000)).map((d) => ({ ...d, id: 0, webhook_id: '', data: JSON.parse(d.data_json) as unknown, data_json: '' })),
        ).then((rows) => rows.length);
      }
      assert.ok(deliveries > 0, 'the night told some webhooks something');
      t.diagnostic(JSON.stringify(did));
      // Floors well under what each seed does today (130–155 leases, 66–76 completions, 12–17 copies, 25–38 failures, one cancel catching a lease, 2–5 leases given back by nodes marked down).
      assert.ok(did.leases >= 80, `leases: ${did.leases}`);
      assert.ok(did.completions >= 40, `completions: ${did.completions}`);
      assert.ok(did.copies >= 5, `straggler copies: ${did.copies}`);
      assert.ok(did.failures >= 15, `failures: ${did.failures}`);
      assert.ok(did.cancelledWhileLeased >= 1, `jobs leased when their sweep was cancelled: ${did.cancelledWhileLeased}`);
      assert.ok(did.markedDown >= 1, `nodes marked down: ${did.markedDown}`);
      assert.ok(did.requeuedByDown >= 1, `leases a node marked down gave back: ${did.requeuedByDown}`);
      await both(async (e) => (await e.claimEvents(10_000, 60_000)).map((ev) => ({ subject: ev.subject, msg_id: ev.msg_id, payload: JSON.parse(ev.payload) as unknown })));
    } finally {
      await lite.close();
      await pg.close();
      tmp.cleanup();
    }
  });
}
