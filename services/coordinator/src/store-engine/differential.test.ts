/**
 * SQLite and PostgreSQL, step for step: a seeded random night (picks by
 * nodes of different cards, backends and loaded models; completions, skips,
 * failures with and without OOM, requeues, renewals, expiring leases, the
 * clock moving on) applied to both engines must give the same answer at
 * every step, the same counters, the same rows and the same events. The
 * conformance suite pins each rule by example; this catches the cases in
 * between (tie-breaks, backoff edges, blocklists) where the two could drift.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { imageKey, mulberry32, thumbKey } from '@nightshift/common';
import { postgresMissing, startPostgres, tempDir, type PostgresServer } from '@nightshift/devfarm';
import type { NodeCaps } from '../placement.js';
import type { JobRow, NewJob, StoreEngine, SweepRow } from './engine.js';
import { PostgresEngine } from './postgres.js';
import { SqliteEngine } from './sqlite.js';

const skip = postgresMissing();
let server: PostgresServer | undefined;
if (!skip) {
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
}

const NODES: { id: string; caps: NodeCaps }[] = [
  { id: 'big', caps: { backends: ['procedural', 'exec'], models: ['m1'], vramMb: 24_576 } },
  { id: 'mid', caps: { backends: ['procedural'], models: ['m2'], vramMb: 12_288 } },
  { id: 'small', caps: { backends: ['procedural'], models: [], vramMb: 6_144 } },
  { id: 'exec', caps: { backends: ['exec'], models: ['m1', 'm2'], vramMb: 16_384 } },
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
  test(`seed ${seed}: SQLite and PostgreSQL answer a random night identically`, { skip }, async () => {
    const clock = { t: 1_700_000_000_000 };
    const opts = { now: () => clock.t, maxAttempts: 3, blocklistAfter: 3 };
    const tmp = tempDir('nightshift-diff-');
    const lite = SqliteEngine.open(join(tmp.dir, 'c.sqlite'), opts);
    const pg = await PostgresEngine.open({ url: await server!.createDatabase(`diff_${seed}`), ...opts });
    const engines: StoreEngine[] = [lite, pg];
    const both = async <T>(f: (e: StoreEngine) => Promise<T>): Promise<T> => {
      const [a, b] = await Promise.all(engines.map(f));
      assert.deepEqual(b, a);
      return a!;
    };
    try {
      const random = mulberry32(seed);
      const pickOne = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
      const sweeps: { id: string; total: number }[] = [];
      const specs = [
        { backend: 'procedural', model: 'm1', priority: 0, n: 40 },
        { backend: 'procedural', model: 'm2', priority: 0, n: 30 },
        { backend: 'exec', model: 'm1', priority: 0, n: 20 },
        { backend: 'procedural', model: 'm3', priority: 2, n: 10 },
      ];
      const sweepColumns = ['id', 'name', 'spec_json', 'status', 'priority', 'backend', 'total', 'created_at', 'finished_at', 'kind', 'model'];
      for (const [i, s] of specs.entries()) {
        const jobs = sweepJobs(`s${i}`, s.n, s.backend, s.model, random);
        await both(async (e) => comparable(await e.createSweep({ name: `s${i}`, spec: { i }, priority: s.priority, backend: s.backend, model: s.model }, jobs, `sw-${seed}-${i}`), sweepColumns));
        sweeps.push({ id: `sw-${seed}-${i}`, total: s.n });
        clock.t += 1;
      }
      const held = new Map<string, { nodeId: string; job: JobRow }>();
      const columns = Object.keys((await pg.getJob(`sw-${seed}-0-000000`))!);
      for (let step = 0; step < 700; step++) {
        const r = random();
        if (r < 0.45) {
          const node = pickOne(NODES);
          const picked = await both(async (e) => comparable(await e.leaseNext(node.id, node.caps, 30_000), columns));
          if (picked) held.set(picked.id as string, { nodeId: node.id, job: (await lite.getJob(picked.id as string))! });
        } else if (r < 0.7 && held.size) {
          const [id, h] = pickOne([...held]);
          held.delete(id);
          const skipped = random() < 0.2;
          await both((e) => e.completeJob(id, h.nodeId, { imageKey: imageKey(h.job.render_key), thumbKey: thumbKey(h.job.render_key), renderMs: 100 + step, skipped }));
        } else if (r < 0.82 && held.size) {
          const [id, h] = pickOne([...held]);
          held.delete(id);
          const vramMb = NODES.find((n) => n.id === h.nodeId)!.caps.vramMb;
          const failure = { error: `e${step}`, logTail: 't', outOfMemory: random() < 0.3 };
          await both(async (e) => {
            const out = await e.failJob(id, { id: h.nodeId, vramMb }, failure);
            return out && { job: comparable(out.job, columns), blocklisted: out.blocklisted };
          });
        } else if (r < 0.86 && held.size) {
          const [id] = pickOne([...held]);
          held.delete(id);
          await both((e) => e.requeue([id], 'asked'));
        } else if (r < 0.9) {
          const node = pickOne(NODES);
          await both((e) => e.renewLeases(node.id, [...held].filter(([, h]) => h.nodeId === node.id).map(([id]) => id), 30_000));
        } else {
          clock.t += Math.floor(random() * 20_000);
          const expired = await both(async (e) => (await e.expireLeases()).map((j) => j.id));
          for (const id of expired) held.delete(id);
        }
        if (step % 50 === 0) for (const s of sweeps) await both((e) => e.counts(s.id));
      }
      for (const s of sweeps) {
        await both(async (e) => comparable(await e.getSweep(s.id), sweepColumns));
        await both((e) => e.counts(s.id));
        for (let i = 0; i < s.total; i++) {
          const id = `${s.id}-${String(i).padStart(6, '0')}`;
          await both(async (e) => ({ row: comparable(await e.getJob(id), columns), excluded: await e.exclusions(id) }));
        }
      }
      await both(async (e) => (await e.claimEvents(10_000, 60_000)).map((ev) => ({ subject: ev.subject, msg_id: ev.msg_id, payload: JSON.parse(ev.payload) as unknown })));
    } finally {
      await lite.close();
      await pg.close();
      tmp.cleanup();
    }
  });
}
