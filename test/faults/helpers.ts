/** Shared pieces of the fault-injection suite: a farm tuned for fast failure detection, and audits. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { STREAM, SUBJECTS } from '@nightshift/common';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm, type FarmOptions } from '@nightshift/devfarm';

export const SWEEP_200 = {
  name: 'faults',
  prompts: ['a red circle', 'a blue square', 'green stripes', 'a yellow triangle', 'purple circles'],
  axes: { style: ['', 'watercolor', 'ink', 'oil'] },
  seeds: { start: 0, count: 10 },
  params: { width: 64, height: 64, steps: 4 },
};

/** Short leases and timeouts so a lost node is noticed in seconds; renders slowed so faults land mid-sweep. */
export const FAST_FAILOVER = {
  NIGHTSHIFT_LEASE_MS: '4000',
  NIGHTSHIFT_HEARTBEAT_MS: '300',
  NIGHTSHIFT_NODE_TIMEOUT_MS: '2500',
  NIGHTSHIFT_RESTART_GRACE_MS: '6000',
  NIGHTSHIFT_LOG_LEVEL: 'info',
};

export async function faultFarm(opts: Partial<FarmOptions> & { renderDelayMs?: number } = {}) {
  const tmp = tempDir('nightshift-faults-');
  // A farm that fails to start has stopped its processes; its folder goes too.
  const farm = await startFarm({
    dir: tmp.dir,
    nodes: opts.nodes ?? 3,
    ...opts,
    env: { ...FAST_FAILOVER, NIGHTSHIFT_FAULTS: `render-delay-ms=${opts.renderDelayMs ?? 60}`, ...opts.env },
  }).catch((err: unknown) => {
    tmp.cleanup();
    throw err;
  });
  if ((opts.nodes ?? 3) > 0) await waitForNodes(farm.apiUrl, opts.nodes ?? 3);
  return { farm, tmp, async stop() { await farm.stop(); tmp.cleanup(); } };
}

export async function submit(farm: Farm, spec: unknown): Promise<string> {
  const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  const body = (await res.json()) as { id: string; error?: string };
  assert.equal(res.status, 201, body.error);
  return body.id;
}

export interface SweepState {
  status: string;
  counts: Record<string, number>;
  explain: string[];
}

export async function sweep(farm: Farm, id: string): Promise<SweepState> {
  return (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as SweepState;
}

/** Waits until `done` images exist (done + skipped). */
export async function waitProgress(farm: Farm, id: string, done: number, timeoutMs = 60_000): Promise<SweepState> {
  return waitFor(`sweep ${id} to reach ${done} images`, async () => {
    const s = await sweep(farm, id).catch(() => undefined);
    return s && (s.counts.done ?? 0) + (s.counts.skipped ?? 0) >= done ? s : undefined;
  }, timeoutMs, 100);
}

export async function waitFinished(farm: Farm, id: string, timeoutMs = 120_000): Promise<SweepState> {
  return waitFor(`sweep ${id} to finish`, async () => {
    const s = await sweep(farm, id).catch(() => undefined);
    return s && ['done', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
  }, timeoutMs, 200);
}

/**
 * `rendered` log lines of every gpu-node: renderKey → node names, in the
 * order the renders finished (by the lines' timestamps, not by log file).
 */
export function renders(farm: Farm): Map<string, string[]> {
  const lines: { renderKey: string; node: string; time: number }[] = [];
  const logs = join(farm.dir, 'logs');
  for (const f of readdirSync(logs).filter((n) => n.startsWith('gpu-node-'))) {
    for (const line of readFileSync(join(logs, f), 'utf8').split('\n')) {
      if (!line.includes('"msg":"rendered"')) continue;
      const entry = JSON.parse(line) as { renderKey: string; time: number };
      lines.push({ renderKey: entry.renderKey, node: f.replace(/\.log$/, ''), time: entry.time });
    }
  }
  const out = new Map<string, string[]>();
  for (const l of lines.sort((a, b) => a.time - b.time)) out.set(l.renderKey, [...(out.get(l.renderKey) ?? []), l.node]);
  return out;
}

export interface ResultRow {
  job_id: string;
  node_id: string;
  skipped: number;
  accepted: number;
  copy: number;
}

/** The coordinator's audit of every result report, read from its SQLite file (WAL: a reader beside the writer). */
export function results(farm: Farm): ResultRow[] {
  if (farm.database) throw new Error('results(): this farm keeps its state in PostgreSQL; use resultsOf()');
  const db = new Database(join(farm.dir, 'coordinator', 'coordinator.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT job_id, node_id, skipped, accepted, copy FROM results ORDER BY id').all() as ResultRow[];
  } finally {
    db.close();
  }
}

/** The same audit on either engine: the SQLite file, or the `results` table of the farm's PostgreSQL database. */
export async function resultsOf(farm: Farm): Promise<ResultRow[]> {
  if (!farm.database) return results(farm);
  const client = new pg.Client({ connectionString: farm.database.url });
  await client.connect();
  try {
    return (await client.query<ResultRow>('SELECT job_id, node_id, skipped, accepted, copy FROM results ORDER BY id')).rows;
  } finally {
    await client.end();
  }
}

/**
 * The farm as seen through coordinator replica `i`'s API (every helper here
 * reads `farm.apiUrl`), for after replica 0 was killed. A view for reading:
 * starting processes goes through the farm itself.
 */
/** What a gpu-node itself says it holds (`nightshift_node_jobs_held` on its /metrics, NIGHTSHIFT_NODE_METRICS_PORT), not what a coordinator committed. */
export async function nodeHeldJobs(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/^nightshift_node_jobs_held\S* (\d+)/m.exec(text)?.[1] ?? 0);
}

export function viaReplica(farm: Farm, i: number): Farm {
  const replica = farm.coordinators[i];
  if (!replica) throw new Error(`the farm has no coordinator replica ${i}`);
  return { ...farm, apiUrl: replica.apiUrl };
}

export interface LogLine {
  msg: string;
  time: number;
  [field: string]: unknown;
}

/** The JSON lines of one of the farm's logs (`coordinator.log`, `gpu-node-0.log`…), from byte `from` on. */
export function logLines(farm: Farm, file: string, from = 0): LogLine[] {
  const text = readFileSync(join(farm.dir, 'logs', file)).subarray(from).toString('utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

/** How long one of the farm's logs is now, to read only what comes after (`logLines(farm, file, from)`). */
export const logSize = (farm: Farm, file: string) => readFileSync(join(farm.dir, 'logs', file)).length;

export async function renderedEventCount(farm: Farm): Promise<number> {
  const nc = await connect({ servers: farm.nats.reachUrl });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(STREAM, { subjects_filter: SUBJECTS.imageRendered });
    return info.state.subjects?.[SUBJECTS.imageRendered] ?? 0;
  } finally {
    await nc.close();
  }
}

/**
 * The suite's invariant: every job done, exactly N distinct images and
 * thumbnails in S3, exactly N rendered events, and no render repeated unless
 * `allowedTwice` says why (a node killed mid-job).
 */
export async function assertExactlyOnce(farm: Farm, id: string, n: number, allowedTwice: (renderKey: string, nodes: string[]) => boolean = () => false) {
  const final = await waitFinished(farm, id);
  assert.equal(final.status, 'done', JSON.stringify(final));
  assert.equal((final.counts.done ?? 0) + (final.counts.skipped ?? 0), n, JSON.stringify(final.counts));
  assert.equal(final.counts.failed ?? 0, 0);
  assert.equal((await farm.storage.list('images')).length, n);
  assert.equal((await farm.storage.list('thumbs')).length, n);
  await waitFor(`${n} rendered events`, async () => (await renderedEventCount(farm)) === n, 60_000, 250);
  // Stays at n: nothing is published twice.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await renderedEventCount(farm), n);
  // Every image the gallery lists, exactly once: stored images are never lost to it.
  const gallery = (await (await fetch(`${farm.apiUrl}/api/gallery?sweep=${id}&limit=500`)).json()) as { total: number; images: { renderKey: string }[] };
  assert.equal(gallery.total, n, 'gallery lists every image');
  assert.equal(new Set(gallery.images.map((i) => i.renderKey)).size, n);
  // The coordinator's audit: every job's result was taken exactly once.
  const accepted = (await resultsOf(farm)).filter((r) => r.accepted);
  assert.equal(accepted.length, n, 'results accepted');
  assert.equal(new Set(accepted.map((r) => r.job_id)).size, n, 'a job had two results accepted');
  const rendered = renders(farm);
  // Every job marked done was rendered by some node's log: the audit below is not vacuous.
  assert.ok(rendered.size >= (final.counts.done ?? 0), `rendered lines for ${rendered.size} images, ${final.counts.done} done`);
  const twice = [...rendered].filter(([, nodes]) => nodes.length > 1);
  const unexplained = twice.filter(([key, nodes]) => !allowedTwice(key, nodes));
  assert.deepEqual(unexplained, [], 'renders repeated without need');
  return { final, twice };
}

/**
 * The suite's first scenario, shared by both engines (faults.test.ts on
 * SQLite, replicas.test.ts on PostgreSQL): kill -9 gpu-node-1 once 40 of
 * SWEEP_200's images are done; only its in-flight jobs may render again.
 */
export async function killNodeMidSweep(farm: Farm): Promise<void> {
  const id = await submit(farm, SWEEP_200);
  await waitProgress(farm, id, 40);
  await farm.nodes[1]!.kill9();
  const { twice } = await assertExactlyOnce(farm, id, 200, (_key, nodes) => nodes[0] === 'gpu-node-1');
  // Its work was requeued to the others: they did all the rest.
  const byNode = [...renders(farm).values()].map((n) => n.at(-1));
  assert.ok(byNode.filter((n) => n === 'gpu-node-1').length < 200 - 40);
  assert.ok(twice.length <= 2, `at most the killed node's in-flight jobs render again (got ${twice.length})`);
}

/**
 * The suite's coordinator scenario, shared by both engines: kill -9 the
 * (only) coordinator once 50 images are done, start it again on the same
 * store; nothing is lost or rendered twice.
 */
export async function killCoordinatorMidSweep(farm: Farm): Promise<void> {
  const id = await submit(farm, SWEEP_200);
  await waitProgress(farm, id, 50);
  await farm.coordinator.kill9();
  await new Promise((r) => setTimeout(r, 1_500));
  await farm.startCoordinator();
  await waitForNodes(farm.apiUrl, 3);
  await assertExactlyOnce(farm, id, 200);
}
