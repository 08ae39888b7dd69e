/** The scheduler's choices, against an in-memory database: no servers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateVramMb, expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type NewJob } from './store.js';
import { Scheduler, type NodeCaps } from './scheduler.js';
import { ownKeys } from './store/completion.js';

const GPU = (vramMb: number, backends = ['procedural']): NodeCaps => ({ backends, models: ['procedural-v1'], vramMb });

function setup(now = { t: 1_000_000 }) {
  const store = new Store(openDb(':memory:'), { now: () => now.t, maxAttempts: 3, blocklistAfter: 2 });
  return { store, scheduler: new Scheduler(store.db), now };
}

function addSweep(store: Store, spec: Record<string, unknown>, id?: string) {
  const parsed = parseSpec({ seeds: { count: 4 }, ...spec });
  const jobs: NewJob[] = expandSweep(parsed, 10_000).map((j) => ({ ...j, minVramMb: estimateVramMb(Number(j.params.width), Number(j.params.height)) }));
  return store.createSweep({ name: parsed.name ?? 'x', spec: parsed, priority: parsed.priority, backend: parsed.backend, model: 'procedural-v1' }, jobs, id);
}

/** Leases `n` jobs to a node the way the hub does: pick, lease, repeat. */
function take(store: Store, scheduler: Scheduler, node: string, caps: NodeCaps, n: number, now: number) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = scheduler.pick(node, caps, now);
    if (!id) break;
    out.push(store.lease([id], node, 30_000)[0]!);
  }
  return out;
}

test('higher priority sweeps go first', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['low'], priority: 0 }, 'sw-low');
  now.t++;
  addSweep(store, { prompts: ['high'], priority: 5 }, 'sw-high');
  const jobs = take(store, scheduler, 'n1', GPU(24_000), 4, now.t);
  assert.deepEqual(jobs.map((j) => j.sweep_id), ['sw-high', 'sw-high', 'sw-high', 'sw-high']);
});

test('equal priorities share nodes fairly: two sweeps progress together', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['a'], seeds: { count: 20 } }, 'sw-a');
  now.t++;
  addSweep(store, { prompts: ['b'], seeds: { count: 20 } }, 'sw-b');
  const jobs = take(store, scheduler, 'n1', GPU(24_000), 8, now.t);
  const perSweep = (id: string) => jobs.filter((j) => j.sweep_id === id).length;
  assert.equal(perSweep('sw-a'), 4);
  assert.equal(perSweep('sw-b'), 4);
  // Alternating, oldest first on ties.
  assert.deepEqual(jobs.slice(0, 4).map((j) => j.sweep_id), ['sw-a', 'sw-b', 'sw-a', 'sw-b']);
});

test('placement: a job only goes where it fits (VRAM, backend)', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['big'], params: { width: 512, height: 512 } }, 'sw-big');
  assert.equal(scheduler.pick('gtx1070', GPU(8_192), now.t), undefined, 'an 8 GB card must not get 512×512 jobs');
  assert.equal(scheduler.pick('cpu', GPU(24_000, ['exec']), now.t), undefined, 'a node without the backend gets nothing');
  assert.ok(scheduler.pick('rtx3090', GPU(24_576), now.t));
});

test('a paused sweep is not dispatched; resume brings it back', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['p'] }, 'sw-p');
  assert.ok(store.setPaused('sw-p', true));
  assert.equal(scheduler.pick('n1', GPU(24_000), now.t), undefined);
  assert.ok(store.setPaused('sw-p', false));
  assert.ok(scheduler.pick('n1', GPU(24_000), now.t));
});

test('failures: exponential backoff, never the same node again, hard fail after maxAttempts', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['f'], seeds: { count: 1 } }, 'sw-f');
  const fail = (node: string) => {
    const [job] = take(store, scheduler, node, GPU(24_000), 1, now.t);
    assert.ok(job, `no job for ${node}`);
    return store.failJob(job.id, { id: node, vramMb: 24_000 }, { error: 'boom', logTail: 'last lines', outOfMemory: false })!.job;
  };
  let job = fail('n1');
  assert.equal(job.state, 'queued');
  assert.equal(job.not_before, now.t + 1_000);
  assert.equal(scheduler.pick('n2', GPU(24_000), now.t), undefined, 'backoff not yet over');
  now.t += 1_000;
  assert.equal(scheduler.pick('n1', GPU(24_000), now.t), undefined, 'the failing node never gets it again');
  job = fail('n2');
  assert.equal(job.not_before, now.t + 2_000, 'backoff doubles');
  now.t += 2_000;
  job = fail('n3');
  assert.equal(job.state, 'failed');
  assert.equal(job.log_tail, 'last lines');
  assert.equal(store.getSweep('sw-f')!.status, 'failed');
});

test('a node that keeps failing a sweep is blocklisted for it (and only it)', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['x'], seeds: { count: 6 } }, 'sw-x');
  now.t++;
  addSweep(store, { prompts: ['y'], seeds: { count: 6 } }, 'sw-y');
  let blocklisted = false;
  for (let i = 0; i < 2; i++) {
    const id = scheduler.pick('bad', GPU(24_000), now.t)!;
    const job = store.lease([id], 'bad', 30_000)[0]!;
    if (job.sweep_id !== 'sw-x') {
      store.completeJob(job.id, 'bad', { ...ownKeys(job), renderMs: 1, skipped: false });
      i--;
      continue;
    }
    blocklisted = store.failJob(job.id, { id: 'bad', vramMb: 24_000 }, { error: 'backend broken', logTail: '', outOfMemory: false })!.blocklisted || blocklisted;
  }
  assert.ok(blocklisted);
  assert.deepEqual(store.blockedNodes('sw-x'), ['bad']);
  const next = take(store, scheduler, 'bad', GPU(24_000), 3, now.t);
  assert.ok(next.every((j) => j.sweep_id === 'sw-y'), 'a blocklisted node still serves other sweeps');
  assert.ok(scheduler.pick('good', GPU(24_000), now.t + 10_000));
});

test('out of memory: retried only on a card with more VRAM', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['m'], seeds: { count: 1 } }, 'sw-m');
  const [job] = take(store, scheduler, 'n12', GPU(12_288), 1, now.t);
  const after = store.failJob(job!.id, { id: 'n12', vramMb: 12_288 }, { error: 'CUDA out of memory', logTail: '', outOfMemory: true })!.job;
  assert.equal(after.min_vram_mb, 12_289);
  now.t += 5_000;
  assert.equal(scheduler.pick('other12', GPU(12_288), now.t), undefined, 'an equal card gets nothing');
  assert.equal(scheduler.pick('n24', GPU(24_576), now.t), job!.id);
});

test('model already loaded breaks ties between equally served sweeps', () => {
  const { store, scheduler, now } = setup();
  store.createSweep({ name: 'a', spec: {}, priority: 0, backend: 'exec', model: 'sd15' }, [jobOf(0, 'sd15')], 'sw-sd15');
  now.t++;
  store.createSweep({ name: 'b', spec: {}, priority: 0, backend: 'exec', model: 'sdxl' }, [jobOf(0, 'sdxl')], 'sw-sdxl');
  const caps: NodeCaps = { backends: ['exec'], models: ['sdxl'], vramMb: 24_000 };
  assert.equal(store.getJob(scheduler.pick('n', caps, now.t)!)!.sweep_id, 'sw-sdxl');
});

test("batching by model: a node keeps taking its loaded model's sweep even while the user's other sweep has fewer jobs running", () => {
  const { store, scheduler, now } = setup();
  store.createSweep({ name: 'a', spec: {}, priority: 0, backend: 'exec', model: 'sd15' }, [0, 1, 2, 3].map((i) => jobOf(i, 'sd15')), 'sw-sd15');
  now.t++;
  store.createSweep({ name: 'b', spec: {}, priority: 0, backend: 'exec', model: 'sdxl' }, [0, 1, 2, 3].map((i) => jobOf(i, 'sdxl')), 'sw-sdxl');
  const sdxl: NodeCaps = { backends: ['exec'], models: ['sdxl'], vramMb: 24_000 };
  const taken = [0, 1, 2].map(() => store.lease([scheduler.pick('n', sdxl, now.t)!], 'n', 60_000)[0]!.sweep_id);
  assert.deepEqual(taken, ['sw-sdxl', 'sw-sdxl', 'sw-sdxl'], 'no switch to sd15 although it has none running');
  // A node with neither model loaded still shares between the two sweeps by running count.
  const other: NodeCaps = { backends: ['exec'], models: [], vramMb: 24_000 };
  assert.equal(store.getJob(scheduler.pick('m', other, now.t)!)!.sweep_id, 'sw-sd15');
});

test('stragglers: only when the sweep queue is empty, never on the node running it', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['s'], seeds: { count: 2 } }, 'sw-s');
  const [a, b] = take(store, scheduler, 'slow', GPU(24_000), 2, now.t);
  assert.ok(a && b);
  assert.equal(scheduler.anyStraggler(now.t - 10_000), false, 'nothing has run long enough: a fill asks no node');
  assert.equal(scheduler.straggler('idle', GPU(24_000), now.t - 10_000), undefined);
  now.t += 60_000;
  assert.equal(scheduler.anyStraggler(now.t - 10_000), true);
  assert.equal(scheduler.straggler('slow', GPU(24_000), now.t - 10_000), undefined, 'not onto the node that has it');
  const copyOf = scheduler.straggler('idle', GPU(24_000), now.t - 10_000);
  assert.equal(copyOf, a.id, 'the longest-running job first');
  const copy = store.leaseCopy(copyOf!, 'idle', 30_000)!;
  assert.equal(copy.copy_node_id, 'idle');
  assert.equal(scheduler.anyStraggler(now.t - 10_000), true, 'the other job still could be copied');
  store.leaseCopy(b.id, 'idle2', 30_000);
  assert.equal(scheduler.anyStraggler(now.t - 10_000), false, 'every running job has its copy');
  // First result wins; the other holder is told to stop.
  const outcome = store.completeJob(copy.id, 'idle', { ...ownKeys(copy), renderMs: 5, skipped: false });
  assert.deepEqual(outcome, { accepted: true, cancelOn: ['slow'] });
  assert.deepEqual(store.completeJob(copy.id, 'slow', { ...ownKeys(copy), renderMs: 9, skipped: false }), { accepted: false, cancelOn: [] });
  // Exactly one image event for the job, whoever finished.
  const events = store.db.prepare(`SELECT COUNT(*) AS n FROM outbox WHERE subject = 'nightshift.image.rendered'`).get() as { n: number };
  assert.equal(events.n, 1);
});

test('expired leases requeue; a restart grace keeps leases alive for reconnecting nodes', () => {
  const { store, scheduler, now } = setup();
  addSweep(store, { prompts: ['l'], seeds: { count: 2 } }, 'sw-l');
  take(store, scheduler, 'n1', GPU(24_000), 2, now.t);
  now.t += 31_000;
  assert.equal(store.extendAllLeases(20_000), 2);
  assert.equal(store.expireLeases().length, 0);
  now.t += 21_000;
  assert.equal(store.expireLeases().length, 2);
  assert.equal(store.counts('sw-l').queued, 2);
});

function jobOf(index: number, model: string): NewJob {
  return { index, renderKey: `${model}-${index}`.padEnd(64, '0'), prompt: 'p', seed: index, params: {}, axes: {}, backend: 'exec', model, minVramMb: 0 };
}
