/**
 * A node whose working hours end mid-sweep, over real processes: node-1's
 * clock (NIGHTSHIFT_NODE_CLOCK_OFFSET_FILE) reads 00:30, inside its window
 * "00:00-01:00", until it has rendered a few images; then the test moves it
 * to 01:00:05. It leaves (requeue mode: hands back what it holds), shows
 * "sleeping until 00:00" in GET /api/nodes, renders nothing more, and the
 * sweep finishes on node-0. No step depends on how fast the machine is.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { main as nightshift } from '@nightshift/cli';

/** Images node-1 renders inside its window before the test closes it. */
const BEFORE_CLOSE = 3;
const SPEC = {
  name: 'night-shift',
  prompts: ['a red circle', 'a blue square', 'green stripes'],
  axes: { style: ['', 'watercolor'] },
  seeds: { start: 1, count: 25 },
  params: { width: 64, height: 64, steps: 2 },
};
const JOBS = 3 * 2 * 25;

interface NodeBody {
  id: string;
  status: string;
  currentJobs: string[];
  sleeping: { reason: string; until: string | null; untilLocal: string; label: string } | null;
}

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;

async function get<T>(path: string): Promise<T> {
  const res = await fetch(`${farm.apiUrl}${path}`);
  assert.equal(res.status, 200, path);
  return (await res.json()) as T;
}

const imagesBy = async (sweepId: string, node: string) => (await get<{ images: { node: string }[] }>(`/api/sweeps/${sweepId}/images`)).images.filter((i) => i.node === node).length;

/** The offset that makes node-1's (UTC) clock read today's `h:m:s` now. */
function offsetTo(h: number, m: number, s: number): number {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), h, m, s) - Date.now();
}
let clockFile: string;

describe('a node schedule closing mid-sweep', { timeout: 180_000 }, () => {
  before(async () => {
    tmp = tempDir();
    const config = join(tmp.dir, 'night-node.yaml');
    writeFileSync(config, ['procedural: true', 'schedule:', '  - "mon-sun 00:00-01:00"', 'onLeave: requeue', ''].join('\n'));
    clockFile = join(tmp.dir, 'node-1-clock-offset');
    writeFileSync(clockFile, String(offsetTo(0, 30, 0)));
    farm = await startFarm({
      dir: tmp.dir,
      nodes: 2,
      // Slow renders, so the sweep outlasts node-1's window.
      env: { NIGHTSHIFT_FAULTS: 'render-delay-ms=500' },
      nodeEnv: (i): Record<string, string> => (i === 1 ? { NIGHTSHIFT_NODE_CONFIG: config, TZ: 'UTC', NIGHTSHIFT_NODE_CLOCK_OFFSET_FILE: clockFile } : {}),
    });
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('node-1 leaves at its window end, hands back its jobs, and the sweep finishes on node-0', async (t) => {
    await waitForNodes(farm.apiUrl, 2);
    const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC) });
    assert.equal(res.status, 201);
    const { id, jobs } = (await res.json()) as { id: string; jobs: number };
    assert.equal(jobs, JOBS);

    await waitFor(`node-1 to render ${BEFORE_CLOSE} images inside its window`, async () => (await imagesBy(id, 'node-1')) >= BEFORE_CLOSE, 90_000, 200);
    writeFileSync(clockFile, String(offsetTo(1, 0, 5)));
    const asleep = await waitFor('node-1 asleep', async () => {
      const { nodes } = await get<{ nodes: NodeBody[] }>('/api/nodes');
      const n1 = nodes.find((n) => n.id === 'node-1');
      return n1?.sleeping ? n1 : undefined;
    }, 90_000, 200);
    const sweepThen = await get<{ status: string }>(`/api/sweeps/${id}`);
    const byNode1 = await imagesBy(id, 'node-1');
    assert.notEqual(sweepThen.status, 'done', 'precondition: the window closed mid-sweep');
    assert.ok(byNode1 >= BEFORE_CLOSE, `node-1 worked before its window closed (it rendered ${byNode1})`);
    t.diagnostic(`node-1 rendered ${byNode1} of ${JOBS} before its window closed`);

    assert.equal(asleep.status, 'online', 'still connected, just taking no work');
    assert.equal(asleep.sleeping!.reason, 'schedule');
    assert.equal(asleep.sleeping!.untilLocal, '00:00');
    assert.equal(asleep.sleeping!.label, 'sleeping until 00:00');

    // Handed back at once (requeue mode), not after a lease timeout; at most an upload already under way finishes.
    await waitFor('node-1 holds nothing', async () => (await get<{ nodes: NodeBody[] }>('/api/nodes')).nodes.find((n) => n.id === 'node-1')!.currentJobs.length === 0, 10_000, 100);

    const done = await waitFor('the sweep to finish', async () => {
      const s = await get<{ status: string; counts: Record<string, number> }>(`/api/sweeps/${id}`);
      return s.status === 'done' ? s : undefined;
    }, 120_000, 250);
    assert.equal(done.counts.done, JOBS);
    const images = (await get<{ images: { node: string; renderKey: string }[] }>(`/api/sweeps/${id}/images`)).images;
    assert.equal(images.length, JOBS);
    assert.equal(new Set(images.map((i) => i.renderKey)).size, JOBS);
    const node1Final = images.filter((i) => i.node === 'node-1').length;
    assert.ok(node1Final <= byNode1 + 1, `node-1 rendered nothing after leaving (had ${byNode1}, ended with ${node1Final})`);
    assert.ok(images.filter((i) => i.node === 'node-0').length >= JOBS - node1Final, 'the rest was rendered on node-0');

    const { nodes } = await get<{ nodes: NodeBody[] }>('/api/nodes');
    assert.equal(nodes.find((n) => n.id === 'node-1')!.sleeping?.label, 'sleeping until 00:00', 'still asleep at the end');
    assert.equal(nodes.find((n) => n.id === 'node-0')!.sleeping, null);
  });

  test('nightshift node pause|resume: relayed to the node, shown on the nodes page', async () => {
    const run = async (...args: string[]) => {
      const out = new PassThrough();
      let text = '';
      out.on('data', (b: Buffer) => (text += b.toString()));
      const code = await nightshift(['node', 'nightshift', '--url', farm.apiUrl, ...args], { out, err: new PassThrough(), env: {} });
      return { code, text };
    };
    const sleepingOf = async (id: string) => (await get<{ nodes: NodeBody[] }>('/api/nodes')).nodes.find((n) => n.id === id)!.sleeping;
    const paused = await run('node', 'pause', 'node-0');
    assert.equal(paused.code, 0);
    assert.match(paused.text, /node node-0 paused/);
    assert.equal((await waitFor('node-0 paused', sleepingOf.bind(null, 'node-0'), 10_000, 100))?.label, 'paused by hand');
    assert.equal((await run('node', 'resume', 'node-0')).code, 0);
    await waitFor('node-0 working again', async () => (await sleepingOf('node-0')) === null, 10_000, 100);
    assert.notEqual((await run('node', 'pause', 'no-such-node')).code, 0, 'a node that is not connected: an error');
  });
});
