/**
 * The farm over a real (virtual) network: four hosts built with network
 * namespaces, veth links and a bridge (packages/devfarm netns.ts), with
 * addresses in 10.250.0.0/24 that exist only inside the lab.
 *   10.250.0.1          coordinator + nats-server + s3rver
 *   10.250.0.11 … .13   gpu-node-0 … gpu-node-2, one host each
 * Mid-sweep, gpu-node-1's cable is pulled for longer than the node timeout,
 * and gpu-node-2's for less. The sweep must finish with exactly its images;
 * node 1's jobs go back to the queue and it rejoins; node 2 keeps its work.
 * Skips, saying why, where the machine cannot make namespaces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetnsLab, netnsUnavailable, startFarm, tempDir, waitFor, waitForNodes, type Farm, type NetnsLab } from '@nightshift/devfarm';
import { assertExactlyOnce, submit, waitProgress } from '../faults/helpers.js';

const why = await netnsUnavailable();
if (why) console.log(`netns test skipped: ${why}`);

const NODE_TIMEOUT_MS = 4_000;
const LONG_CUT_MS = 9_000; // > node timeout: the coordinator must give up on the node
const SHORT_CUT_MS = 800; // < node timeout, keepalive and lease: nothing may notice
const SWEEP = {
  name: 'netns',
  prompts: ['a red circle', 'a blue square', 'green stripes'],
  axes: { style: ['', 'ink', 'oil'] },
  seeds: { start: 0, count: 15 },
  params: { width: 64, height: 64, steps: 2 },
};
const JOBS = 135;

type Line = { msg: string; time: number; node?: string; requeued?: number; nodes?: string[] };
const lines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('multi-host farm over network namespaces', { skip: why ? `cannot build the lab: ${why}` : false, timeout: 150_000 }, () => {
  const tmp = tempDir('nightshift-netns-');
  let lab: NetnsLab | undefined;
  let farm: Farm | undefined;
  const log = (name: string) => lines(join(tmp.dir, 'logs', `${name}.log`));

  before(async () => {
    try {
      lab = await createNetnsLab('10.250.0');
      const server = await lab.addHost('srv', 1);
      for (let i = 0; i < 3; i++) await lab.addHost(`n${i}`, 11 + i);
      const l = lab;
      farm = await startFarm({
        dir: tmp.dir,
        nodes: 3,
        // Nodes ping every 3 s with 3 s to answer: a dead link is found in about 6 s, an 0.8 s hiccup is not one.
        nodeEnv: () => ({ NIGHTSHIFT_GRPC_KEEPALIVE_MS: '3000' }),
        hosts: { bind: '0.0.0.0', serverAddress: server, serverPrefix: l.exec('srv'), nodePrefix: (i) => l.exec(`n${i}`), reach: (port) => l.forward('srv', port) },
        env: {
          NIGHTSHIFT_HEARTBEAT_MS: '300',
          NIGHTSHIFT_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
          NIGHTSHIFT_LEASE_MS: '8000',
          // The coordinator's own keepalive stays slower than the node timeout, so a silent node is
          // marked down by the timeout (requeue now) rather than first dropped as disconnected
          // (requeue when its leases lapse) — both are correct, the test expects the first.
          NIGHTSHIFT_GRPC_KEEPALIVE_MS: '10000',
          NIGHTSHIFT_STRAGGLER_MIN_MS: '0',
          NIGHTSHIFT_FAULTS: 'render-delay-ms=400',
          // The lab's hosts reach the coordinator on 0.0.0.0 without tokens: a private test network.
          NIGHTSHIFT_INSECURE_OPEN: '1',
        },
      });
      await waitForNodes(farm.apiUrl, 3);
    } catch (err) {
      await farm?.stop();
      await lab?.destroy();
      throw err;
    }
  });

  after(async () => {
    await farm?.stop();
    await lab?.destroy();
    tmp.cleanup();
  });

  test('a long cut requeues that node’s jobs, a short one costs nothing, and the sweep ends with exactly its images', async (t) => {
    const f = farm!;
    const nodesApi = async () => ((await (await fetch(`${f.apiUrl}/api/nodes`)).json()) as { nodes: { id: string; status: string; currentJobs: string[] }[] }).nodes;
    // The nodes really are on other hosts: the coordinator sees their lab addresses.
    const registered = log('coordinator').filter((l) => l.msg === 'node registered');
    assert.equal(new Set(registered.map((l) => l.node)).size, 3);

    const id = await submit(f, SWEEP);
    await waitProgress(f, id, 12);
    const held = (await nodesApi()).find((n) => n.id === 'node-1')!.currentJobs;
    assert.ok(held.length > 0, 'node-1 holds work when its cable is pulled');

    const cutAt = Date.now();
    await lab!.cut('n1');
    await sleep(1_000);
    await lab!.cut('n2');
    await sleep(SHORT_CUT_MS);
    await lab!.restore('n2');

    const down = await waitFor('node-1 marked down', () => log('coordinator').find((l) => l.msg === 'node marked down, jobs requeued' && l.node === 'node-1'), 12_000);
    assert.ok(down.time - cutAt >= NODE_TIMEOUT_MS - 500, 'marked down only after the node timeout');
    assert.ok((down.requeued ?? 0) >= 1, 'its leased jobs went back to the queue');
    await sleep(Math.max(0, cutAt + LONG_CUT_MS - Date.now()));
    await lab!.restore('n1');
    const restoredAt = Date.now();

    // Node 1 notices, reconnects with backoff, is recognised by its id and takes work again.
    await waitFor('node-1 registered again', () => log('gpu-node-1').filter((l) => l.msg === 'registered with coordinator').length >= 2, 30_000, 200);
    const { twice } = await assertExactlyOnce(f, id, JOBS, (_key, nodes) => nodes.length === 2 && nodes.includes('gpu-node-1'));
    assert.ok(twice.length <= 4, `only node-1's jobs in flight at the cut render twice (got ${twice.length})`);

    // Exactly its set of images: one per job's render key, nothing else.
    const jobs = ((await (await fetch(`${f.apiUrl}/api/sweeps/${id}/jobs`)).json()) as { jobs: { renderKey: string }[] }).jobs;
    assert.deepEqual(new Set(await f.storage.list('images')), new Set(jobs.map((j) => `images/${j.renderKey}.png`)));

    const coord = log('coordinator');
    // The short cut: no one gave up on node 2, its stream never broke, it went on rendering.
    assert.ok(!coord.some((l) => l.node === 'node-2' && /marked down|disconnected/.test(l.msg)), 'node-2 was not marked down');
    assert.ok(!coord.some((l) => l.msg === 'leases expired, jobs requeued' && l.nodes?.includes('node-2')), 'no lease of node-2 expired');
    const n2 = log('gpu-node-2');
    assert.equal(n2.filter((l) => l.msg === 'registered with coordinator').length, 1, 'node-2 never reconnected');
    assert.ok(!n2.some((l) => l.msg === 'coordinator connection lost, reconnecting'));
    assert.ok(n2.some((l) => l.msg === 'rendered' && l.time > cutAt + 1_000 + SHORT_CUT_MS), 'node-2 kept rendering after its hiccup');
    // The long cut: node 1 lost its stream, came back, and rendered again.
    assert.ok(log('gpu-node-1').some((l) => l.msg === 'rendered' && l.time > restoredAt), 'node-1 resumed work after the cut');
    assert.ok(coord.filter((l) => l.msg === 'node registered' && l.node === 'node-1').length >= 2);
    const back = log('gpu-node-1').filter((l) => l.msg === 'registered with coordinator')[1]!;
    const lost = log('gpu-node-1').find((l) => l.msg === 'coordinator connection lost, reconnecting');
    t.diagnostic(
      `node-1: marked down ${down.time - cutAt} ms after the cut (${down.requeued} job(s) requeued), noticed the loss itself after ${lost ? lost.time - cutAt : '?'} ms, ` +
        `registered again ${back.time - restoredAt} ms after the restore; rendered twice: ${twice.length}; by node: ${[0, 1, 2].map((i) => log(`gpu-node-${i}`).filter((l) => l.msg === 'rendered').length).join('/')}`,
    );
    const nodes = await nodesApi();
    assert.deepEqual(nodes.map((n) => [n.id, n.status]).sort(), [['node-0', 'online'], ['node-1', 'online'], ['node-2', 'online']]);
  });
});
