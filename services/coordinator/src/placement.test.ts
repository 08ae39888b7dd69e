/** Placement and failure policy: the pure rules, then applied through a Store in memory (no servers). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Scheduler } from './scheduler.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { ownKeys } from './store/completion.js';
import {
  decideFailure,
  explainWait,
  fits,
  FITS_SQL,
  fitsParams,
  isStraggler,
  noCapableNodeLeft,
  Placement,
  shouldClearExclusions,
  type NodeCaps,
  type OnlineNode,
} from './placement.js';

const caps = (vramMb: number, backends = ['procedural']): NodeCaps => ({ backends, models: [], vramMb });
const node = (nodeId: string, vramMb = 24_000, backends = ['procedural']): OnlineNode => ({ nodeId, caps: caps(vramMb, backends) });
const POLICY = { maxAttempts: 3, blocklistAfter: 2 };
const boom = { error: 'boom', logTail: '', outOfMemory: false };
const oom = { error: 'CUDA out of memory', logTail: '', outOfMemory: true };

test('fits: the backend and a big enough card; the scheduler SQL says the same', () => {
  const db = openDb(':memory:');
  const sql = db.prepare(`SELECT (${FITS_SQL.backend('@backend')}) AND (${FITS_SQL.vram('@minVramMb')}) AS ok`);
  let cases = 0;
  for (const backends of [[], ['procedural'], ['exec', 'upscale'], ['procedural', 'exec']]) {
    for (const vramMb of [0, 8_192, 12_288, 24_576]) {
      for (const need of [
        { backend: 'procedural', minVramMb: 0 },
        { backend: 'exec', minVramMb: 12_288 },
        { backend: 'upscale', minVramMb: 12_289 },
        { backend: 'procedural', minVramMb: 24_576 },
      ]) {
        const c = caps(vramMb, backends);
        const inSql = (sql.get({ ...need, ...fitsParams(c) }) as { ok: number }).ok === 1;
        assert.equal(inSql, fits(c, need), `${JSON.stringify(c)} vs ${JSON.stringify(need)}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 64);
  assert.ok(fits(caps(12_288), { backend: 'procedural', minVramMb: 12_288 }), 'a card exactly at the floor fits');
  assert.ok(!fits(caps(12_288), { backend: 'procedural', minVramMb: 12_289 }));
  assert.ok(!fits(caps(80_000, ['exec']), { backend: 'procedural', minVramMb: 0 }));
});

test('a failure: exclusion, exponential backoff capped at a minute, final at maxAttempts', () => {
  const job = (attempts: number, excluded: string[] = []) => ({ attempts, min_vram_mb: 1_000, excluded });
  const fresh = { priorFailures: 0, blocked: false };
  const first = decideFailure(job(1), { id: 'n1', vramMb: 8_000 }, boom, fresh, POLICY, 5_000);
  assert.deepEqual(first, { final: false, excluded: ['n1'], minVramMb: 1_000, notBefore: 6_000, error: 'boom', blocklist: false });
  assert.equal(decideFailure(job(2, ['n1']), { id: 'n2', vramMb: 8_000 }, boom, fresh, POLICY, 0).notBefore, 2_000, 'backoff doubles');
  assert.deepEqual(decideFailure(job(2, ['n1']), { id: 'n2', vramMb: 8_000 }, boom, fresh, POLICY, 0).excluded, ['n1', 'n2']);
  assert.equal(decideFailure(job(3), { id: 'n3', vramMb: 8_000 }, boom, fresh, POLICY, 0).final, true);
  assert.equal(decideFailure(job(20), { id: 'n3', vramMb: 8_000 }, boom, fresh, { ...POLICY, maxAttempts: 100 }, 0).notBefore, 60_000, 'capped');
});

test('an out-of-memory failure raises the VRAM floor above the failing card, never lowers it', () => {
  const d = decideFailure({ attempts: 1, min_vram_mb: 1_000, excluded: [] }, { id: 'small', vramMb: 12_288 }, oom, { priorFailures: 0, blocked: false }, POLICY, 0);
  assert.equal(d.minVramMb, 12_289);
  assert.equal(d.error, 'out of memory on small (12288 MB): CUDA out of memory');
  const already = decideFailure({ attempts: 1, min_vram_mb: 30_000, excluded: [] }, { id: 'small', vramMb: 12_288 }, oom, { priorFailures: 0, blocked: false }, POLICY, 0);
  assert.equal(already.minVramMb, 30_000);
});

test('blocklist: at the blocklistAfter-th failure in a sweep, once', () => {
  const decide = (priorFailures: number, blocked: boolean) =>
    decideFailure({ attempts: 1, min_vram_mb: 0, excluded: [] }, { id: 'n', vramMb: 1 }, boom, { priorFailures, blocked }, POLICY, 0).blocklist;
  assert.deepEqual([decide(0, false), decide(1, false), decide(2, true), decide(5, true)], [false, true, false, false]);
});

test('exclusions relax only when the excluded nodes are all the capable ones', () => {
  assert.equal(shouldClearExclusions(new Set(['a']), [node('a')]), true, 'a one-GPU farm');
  assert.equal(shouldClearExclusions(new Set(['a']), [node('a'), node('b')]), false, 'another node can take it');
  assert.equal(shouldClearExclusions(new Set(['a']), []), false, 'nobody online: nothing to relax for');
});

test('no capable node left: only with blocklisted nodes, nodes online, and none of them free to run the backend', () => {
  const online = [node('a'), node('b', 24_000, ['exec'])];
  assert.equal(noCapableNodeLeft(online, new Set(['a']), 'procedural'), true);
  assert.equal(noCapableNodeLeft(online, new Set(['a']), 'exec'), false);
  assert.equal(noCapableNodeLeft(online, new Set(), 'upscale'), false, 'nothing blocklisted: the sweep waits for a node');
  assert.equal(noCapableNodeLeft([], new Set(['a']), 'procedural'), false, 'nobody online: it waits');
});

test('explain: which queued jobs wait for which node, in words', () => {
  const group = { backend: 'procedural', minVramMb: 12_800, n: 4 };
  assert.equal(explainWait(group, [node('big', 24_000)], new Set()), undefined);
  assert.equal(explainWait(group, [node('small', 8_192)], new Set()), '4 job(s) wait: no node with ≥ 12.5 GB VRAM and backend procedural');
  assert.equal(
    explainWait(group, [node('big', 24_000)], new Set(['big'])),
    '4 job(s) wait: no usable node with ≥ 12.5 GB VRAM and backend procedural (blocklisted for this sweep: big)',
  );
});

test('a straggler has run 3× the median recent render time', () => {
  assert.equal(isStraggler(2_999, [1_000, 900, 5_000]), false);
  assert.equal(isStraggler(3_000, [1_000, 900, 5_000]), true);
  assert.equal(isStraggler(0, []), true, 'no finishes yet: any running job qualifies (the scheduler bounds by stragglerMinMs)');
});

// ---------------------------------------------------------------- through a Store

function farm(online: OnlineNode[], policy = POLICY) {
  const now = { t: 1_000_000 };
  const store = new EngineStore(openDb(':memory:'), { now: () => now.t, ...policy });
  const scheduler = new Scheduler(store.db);
  const placement = new Placement(new SqliteEngine(store), () => online);
  for (const n of online) store.upsertNode(n.nodeId, n.nodeId, { vramMb: n.caps.vramMb, backends: n.caps.backends });
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 4 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'm' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 1_000 })), 'sw');
  const take = (n: OnlineNode) => {
    const id = scheduler.pick(n.nodeId, n.caps, now.t);
    return id ? store.lease([id], n.nodeId, 30_000)[0] : undefined;
  };
  return { store, scheduler, placement, now, take };
}

test('a one-GPU farm retries a failed job on its only node once the backoff is over', async () => {
  const only = node('only');
  const { placement, now, take } = farm([only], { maxAttempts: 3, blocklistAfter: 10 });
  const job = take(only)!;
  await placement.recordFailure(job.id, { id: 'only', vramMb: 24_000 }, boom);
  now.t += 1_000;
  // Other queued jobs come first; then, with exclusions relaxed, the failed one comes back.
  const seen = [take(only), take(only), take(only)].map((j) => j?.id);
  assert.ok(!seen.includes(job.id));
  assert.equal(take(only), undefined, 'excluded until relaxed');
  assert.equal(await placement.relaxExclusions(), 1);
  assert.equal(take(only)?.id, job.id);
});

test('exclusions stay while another capable node is online', async () => {
  const a = node('a');
  const { placement, take } = farm([a, node('b')]);
  const job = take(a)!;
  await placement.recordFailure(job.id, { id: 'a', vramMb: 24_000 }, boom);
  assert.equal(await placement.relaxExclusions(), 0);
});

test('blocklisting the only capable node fails the sweep with the reason', async () => {
  const only = node('only');
  const { store, placement, now, take } = farm([only, node('cpu', 64_000, ['exec'])]);
  const first = (await placement.recordFailure(take(only)!.id, { id: 'only', vramMb: 24_000 }, boom))!;
  assert.deepEqual([first.blocklisted, first.noCapableNode], [false, undefined]);
  now.t += 10_000;
  const second = (await placement.recordFailure(take(only)!.id, { id: 'only', vramMb: 24_000 }, boom))!;
  assert.equal(second.blocklisted, true);
  assert.equal(second.noCapableNode, 4, 'every queued job fails now: the two never leased and the two awaiting a retry');
  assert.equal(store.getSweep('sw')!.status, 'failed');
  assert.ok(store.jobs('sw', ['failed']).some((j) => /no capable node left: every node with backend procedural is blocklisted/.test(j.error ?? '')));
  assert.deepEqual(await placement.explain('sw'), [], 'nothing is left waiting');
});

test('out of memory on the biggest card the farm has ever seen fails the job at once', async () => {
  const small = node('small', 8_192);
  const big = node('big', 24_576);
  const { store, placement, now, take } = farm([small, big], { maxAttempts: 10, blocklistAfter: 10 });
  const onSmall = (await placement.recordFailure(take(small)!.id, { id: 'small', vramMb: 8_192 }, oom))!;
  assert.equal(onSmall.tooBigForEveryCard, false, 'a bigger card exists');
  assert.equal(onSmall.job.min_vram_mb, 8_193);
  now.t += 60_000;
  assert.deepEqual(await placement.explain('sw'), []);
  let job = take(big)!;
  while (job.id !== onSmall.job.id) job = take(big)!;
  const onBig = (await placement.recordFailure(job.id, { id: 'big', vramMb: 24_576 }, oom))!;
  assert.equal(onBig.tooBigForEveryCard, true);
  assert.equal(store.getJob(job.id)!.state, 'failed');
  assert.equal(store.getJob(job.id)!.error, 'out of memory on every node: needs more than 24576 MB VRAM');
});

test('explain names what no online node offers', async () => {
  const { placement } = farm([node('tiny', 512)]);
  assert.deepEqual(await placement.explain('sw'), ['4 job(s) wait: no node with ≥ 1 GB VRAM and backend procedural']);
});

test('worthCopying: by the sweep median of finished renders', async () => {
  const a = node('a');
  const { store, placement, now, take } = farm([a]);
  const [j1, j2] = [take(a)!, take(a)!];
  now.t += 100;
  store.completeJob(j1.id, 'a', { ...ownKeys(j1), renderMs: 100, skipped: false });
  assert.equal(await placement.worthCopying(j2.id, now.t + 199), false);
  assert.equal(await placement.worthCopying(j2.id, now.t + 200), true, 'running 300 ms, 3× the 100 ms median');
  assert.equal(await placement.worthCopying('no-such-job', now.t), false);
});
