/**
 * The big-queue bookkeeping (issue 12) against the truth it replaces: after
 * every step of a random night (leases, results, failures, requeues, nodes
 * going down, expiring leases, straggler copies, cancels), each sweep's
 * counters equal a full count of its jobs, exclusions exist only for jobs
 * that can still run, and the scheduler picks exactly what the rule in
 * scheduler.ts's header, computed naively over every row, picks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { mulberry32 } from '@nightshift/common';
import { migrate, openDb } from './db.js';
import { Store, type JobRow, type SweepCounts, type SweepRow } from './store.js';
import { Scheduler, type NodeCaps } from './scheduler.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { Placement, type OnlineNode } from './placement.js';
import { ownKeys } from './store/completion.js';

function fullCount(store: Store, sweepId: string): SweepCounts {
  const c: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (const r of store.db.prepare('SELECT state, COUNT(*) AS n FROM jobs WHERE sweep_id = ? GROUP BY state').all(sweepId) as { state: JobRow['state']; n: number }[]) {
    c[r.state === 'leased' ? 'running' : r.state] += r.n;
  }
  return c;
}

/** scheduler.ts's rule, naively over every row. */
function referencePick(store: Store, nodeId: string, caps: NodeCaps, now: number): string | undefined {
  const db = store.db;
  const blocked = new Set((db.prepare('SELECT sweep_id FROM sweep_blocklist WHERE node_id = ? AND blocked = 1').all(nodeId) as { sweep_id: string }[]).map((r) => r.sweep_id));
  const jobs = db.prepare('SELECT * FROM jobs ORDER BY idx').all() as JobRow[];
  const excluded = new Set((db.prepare('SELECT job_id FROM job_exclusions WHERE node_id = ?').all(nodeId) as { job_id: string }[]).map((r) => r.job_id));
  const sweeps = (db.prepare('SELECT * FROM sweeps').all() as SweepRow[])
    .filter((s) => (s.status === 'queued' || s.status === 'running') && caps.backends.includes(s.backend) && !blocked.has(s.id))
    .map((s) => ({ s, running: jobs.filter((j) => j.sweep_id === s.id && j.state === 'leased').length, loaded: caps.models.includes(s.model) ? 1 : 0 }))
    .sort((a, b) => b.s.priority - a.s.priority || b.loaded - a.loaded || a.running - b.running || a.s.created_at - b.s.created_at || (a.s.id < b.s.id ? -1 : 1));
  for (const { s } of sweeps) {
    const job = jobs.find((j) => j.sweep_id === s.id && j.state === 'queued' && j.not_before <= now && j.min_vram_mb <= caps.vramMb && !excluded.has(j.id));
    if (job) return job.id;
  }
  return undefined;
}

test('counters equal a full count, exclusions belong to live jobs, and picks follow the rule, through a random night', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = mulberry32(seed); // seeded, so a failing sequence can be replayed
    const pickOne = <T>(xs: T[]): T | undefined => (xs.length ? xs[Math.floor(random() * xs.length)] : undefined);
    const now = { t: 1_000_000 };
    const store = new EngineStore(openDb(':memory:'), { now: () => now.t, maxAttempts: 3, blocklistAfter: 4 });
    const scheduler = new Scheduler(store.db);
    const nodes: OnlineNode[] = [
      { nodeId: 'big', caps: { backends: ['procedural'], models: ['m1'], vramMb: 24_576 } },
      { nodeId: 'small', caps: { backends: ['procedural'], models: ['m2'], vramMb: 8_192 } },
      { nodeId: 'other', caps: { backends: ['procedural', 'exec'], models: [], vramMb: 16_384 } },
    ];
    const placement = new Placement(new SqliteEngine(store), () => nodes);
    for (const n of nodes) store.upsertNode(n.nodeId, n.nodeId, { vramMb: n.caps.vramMb, backends: n.caps.backends });
    const sweeps: string[] = [];
    for (let s = 0; s < 4; s++) {
      const spec = parseSpec({ prompts: [`p${s}`], seeds: { count: 12 }, priority: s === 3 ? 1 : 0 });
      const jobs = expandSweep(spec, 100).map((j, i) => ({ ...j, minVramMb: [1_000, 12_000, 20_000, 30_000][(i + s) % 4]! }));
      sweeps.push(store.createSweep({ name: `s${s}`, spec, priority: spec.priority, backend: 'procedural', model: `m${s % 3}` }, jobs, `sw-${s}`).id);
      now.t += 1;
    }
    const leased = () => store.db.prepare(`SELECT * FROM jobs WHERE state = 'leased'`).all() as JobRow[];
    const steps: Record<string, () => void | Promise<unknown>> = {
      lease: () => {
        const n = pickOne(nodes)!;
        const id = scheduler.pick(n.nodeId, n.caps, now.t);
        assert.equal(id, referencePick(store, n.nodeId, n.caps, now.t), `seed ${seed}: pick for ${n.nodeId}`);
        if (id) store.lease([id], n.nodeId, 30_000);
      },
      complete: () => {
        const j = pickOne(leased());
        if (j) store.completeJob(j.id, j.copy_node_id && random() < 0.5 ? j.copy_node_id : j.node_id!, { ...ownKeys(j), renderMs: 10, skipped: random() < 0.3 });
      },
      fail: () => {
        const j = pickOne(leased());
        const vramMb = nodes.find((n) => n.nodeId === j?.node_id)?.caps.vramMb ?? 0;
        if (j) return placement.recordFailure(j.id, { id: j.node_id!, vramMb }, { error: 'boom', logTail: '', outOfMemory: random() < 0.3 });
      },
      requeue: () => {
        const j = pickOne(leased());
        if (j) store.requeue([j.id], 'test');
      },
      copy: () => {
        const j = pickOne(leased());
        const n = pickOne(nodes.filter((x) => x.nodeId !== j?.node_id));
        if (j && n) store.leaseCopy(j.id, n.nodeId, 30_000);
      },
      nodeDown: () => void store.markNodeDown(pickOne(nodes)!.nodeId, 'test'),
      expire: () => {
        now.t += 31_000;
        store.expireLeases();
      },
      relax: () => placement.relaxExclusions(),
      time: () => void (now.t += 2_000),
      cancel: () => (random() < 0.1 ? void store.cancelSweep(pickOne(sweeps)!) : undefined),
      pause: () => void store.setPaused(pickOne(sweeps)!, random() < 0.5),
    };
    const weights: [string, number][] = [['lease', 30], ['complete', 15], ['fail', 10], ['requeue', 4], ['copy', 4], ['nodeDown', 2], ['expire', 2], ['relax', 4], ['time', 8], ['cancel', 2], ['pause', 3]];
    const total = weights.reduce((n, [, w]) => n + w, 0);
    for (let i = 0; i < 400; i++) {
      let r = random() * total;
      const [name] = weights.find(([, w]) => (r -= w) < 0)!;
      await steps[name]!();
      for (const id of sweeps) assert.deepEqual(store.counts(id), fullCount(store, id), `seed ${seed}, step ${i} (${name}): counters of ${id}`);
      const stale = store.db.prepare(`SELECT x.job_id FROM job_exclusions x JOIN jobs j ON j.id = x.job_id WHERE j.state NOT IN ('queued', 'leased')`).all();
      assert.deepEqual(stale, [], `seed ${seed}, step ${i} (${name}): exclusions of final jobs`);
    }
    const states = fullCount(store, sweeps[0]!);
    assert.ok(states.done + states.skipped + states.failed > 0, `seed ${seed}: the night got somewhere`);
  }
});

test('the counters migration counts existing jobs and moves JSON exclusions of live jobs into their table', () => {
  const db = new Database(':memory:');
  migrate(db, 6);
  db.prepare(`INSERT INTO sweeps (id, name, spec_json, status, backend, total, created_at) VALUES ('sw', 's', '{}', 'running', 'procedural', 4, 0)`).run();
  const insert = db.prepare(
    `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, excluded_nodes)
     VALUES (?, 'sw', ?, 'k', 'p', 0, '{}', '{}', 'procedural', 'm', ?, ?)`,
  );
  insert.run('j0', 0, 'queued', '["a","b"]');
  insert.run('j1', 1, 'leased', '["c"]');
  insert.run('j2', 2, 'done', '["d"]');
  insert.run('j3', 3, 'queued', '[]');
  migrate(db);
  const store = new Store(db);
  assert.deepEqual(store.counts('sw'), { queued: 2, running: 1, done: 1, failed: 0, skipped: 0, cancelled: 0 });
  assert.deepEqual([store.exclusions('j0'), store.exclusions('j1'), store.exclusions('j2'), store.exclusions('j3')], [['a', 'b'], ['c'], [], []]);
  assert.equal('excluded_nodes' in store.getJob('j0')!, false, 'the JSON column is gone');
});
