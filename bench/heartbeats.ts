/**
 * What heartbeats cost the coordinator's store at 1,000 nodes (issue 12): the
 * store in process, on a SQLite file opened as the service opens it, with
 * QUEUED jobs queued and NODES nodes each holding HELD leased jobs. Every
 * node heartbeats ROUNDS times, naming what it holds, in group commits of 50
 * (as the hub's inbox batches what arrives in one event-loop turn), two ways:
 *   - "per job": what a heartbeat cost before, two UPDATEs per held job (its
 *     lease, its copy) and last_seen rewritten every time (kept here as the reference);
 *   - "store": the Store's renewLeases (one statement) and touchNode
 *     (last_seen rewritten only once stale).
 * It prints µs per heartbeat and heartbeats/s for each; the last line is JSON.
 *   node --import tsx bench/heartbeats.ts [NODES=1000] [HELD=8] [ROUNDS=20] [QUEUED=100000]
 */
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tempDir } from '@nightshift/devfarm';
import { parseSpec } from '@nightshift/sweep';
import { openDb, Store } from '@nightshift/coordinator';

const NODES = Number(process.argv[2] ?? 1_000);
const HELD = Number(process.argv[3] ?? 8);
const ROUNDS = Number(process.argv[4] ?? 20);
const QUEUED = Number(process.argv[5] ?? 100_000);
const BATCH = 50;
const LEASE_MS = 30_000;
const tmp = tempDir('nightshift-heartbeats-');

const store = new Store(openDb(join(tmp.dir, 'heartbeats.db')));
const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 1 } });
const total = QUEUED + NODES * HELD;
store.createSweep(
  { name: 'heartbeats', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' },
  (function* () {
    for (let index = 0; index < total; index++) {
      yield { index, renderKey: createHash('sha256').update(String(index)).digest('hex'), prompt: `job ${index}`, seed: index, params: {}, axes: {}, backend: 'procedural', model: 'procedural-v1', minVramMb: 0 };
    }
  })(),
  'sw',
);
const nodes = Array.from({ length: NODES }, (_, i) => `node-${i}`);
const held = new Map<string, string[]>();
const ids = (store.db.prepare('SELECT id FROM jobs ORDER BY idx LIMIT ?').all(NODES * HELD) as { id: string }[]).map((r) => r.id);
for (const [i, n] of nodes.entries()) {
  store.upsertNode(n, n, { vramMb: 24_576, backends: ['procedural'] });
  const mine = ids.slice(i * HELD, (i + 1) * HELD);
  store.lease(mine, n, LEASE_MS);
  held.set(n, mine);
}

const perJob = (() => {
  const main = store.db.prepare(`UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND node_id = ? AND state = 'leased'`);
  const copy = store.db.prepare(`UPDATE jobs SET copy_lease_expires_at = ? WHERE id = ? AND copy_node_id = ? AND state = 'leased'`);
  const seen = store.db.prepare('UPDATE nodes SET last_seen = ? WHERE id = ?');
  return (nodeId: string, jobIds: string[]) => {
    const until = Date.now() + LEASE_MS;
    seen.run(Date.now(), nodeId);
    for (const id of jobIds) {
      main.run(until, id, nodeId);
      copy.run(until, id, nodeId);
    }
  };
})();
const viaStore = (nodeId: string, jobIds: string[]) => {
  store.touchNode(nodeId);
  store.renewLeases(nodeId, jobIds, LEASE_MS);
};

function run(beat: (nodeId: string, jobIds: string[]) => void): { usPerHeartbeat: number; heartbeatsPerSec: number } {
  const t = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < NODES; i += BATCH) {
      store.transaction(() => {
        for (const n of nodes.slice(i, i + BATCH)) beat(n, held.get(n)!);
      });
    }
  }
  const ms = performance.now() - t;
  const beats = ROUNDS * NODES;
  return { usPerHeartbeat: +((ms * 1000) / beats).toFixed(1), heartbeatsPerSec: Math.round(beats / (ms / 1000)) };
}

run(viaStore); // warm-up (JIT, page cache); its last_seen writes are then fresh, as on a running farm
const results = { perJob: run(perJob), store: run(viaStore) };
const renewed = (store.db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'leased' AND lease_expires_at > ?`).get(Date.now()) as { n: number }).n;
store.db.close();
tmp.cleanup();
if (renewed !== NODES * HELD) throw new Error(`${renewed} leases live, expected ${NODES * HELD}`);
console.log(`${NODES} nodes × ${HELD} held jobs, ${QUEUED} queued, ${ROUNDS} heartbeats each, group commits of ${BATCH}`);
console.log(`per job (2 UPDATEs per held job + last_seen): ${results.perJob.usPerHeartbeat} µs/heartbeat, ${results.perJob.heartbeatsPerSec}/s`);
console.log(`store (one renewal statement, last_seen when stale): ${results.store.usPerHeartbeat} µs/heartbeat, ${results.store.heartbeatsPerSec}/s`);
console.log(JSON.stringify({ bench: 'heartbeats', nodes: NODES, held: HELD, queued: QUEUED, rounds: ROUNDS, ...results, speedup: +(results.perJob.usPerHeartbeat / results.store.usPerHeartbeat).toFixed(2) }));
