/**
 * Fault injection over real processes: nats-server, s3rver, the coordinator
 * and three gpu-nodes. Each scenario runs a 200-job sweep, breaks something
 * mid-sweep, and checks that exactly 200 images and 200 events come out.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, waitForNodes } from '@nightshift/devfarm';
import { assertExactlyOnce, faultFarm, killCoordinatorMidSweep, killNodeMidSweep, renderedEventCount, renders, results, submit, sweep, SWEEP_200, waitFinished, waitProgress } from './helpers.js';

describe('fault injection: a 200-job sweep over three gpu-nodes', { timeout: 600_000 }, () => {
  test('kill -9 one gpu-node mid-job', async () => {
    const f = await faultFarm();
    try {
      // Shared with the PostgreSQL run in replicas.test.ts.
      await killNodeMidSweep(f.farm);
    } finally {
      await f.stop();
    }
  });

  test('a node killed between uploading an image and reporting it: the image is still announced and listed', async () => {
    const f = await faultFarm({ nodeEnv: (i): Record<string, string> => (i === 1 ? { NIGHTSHIFT_FAULTS: 'render-delay-ms=60,die-after-upload=15' } : {}) });
    try {
      const id = await submit(f.farm, SWEEP_200);
      let died = false;
      void f.farm.nodes[1]!.exited.then(() => (died = true));
      await waitFor('gpu-node-1 to kill itself after an upload', () => died, 60_000, 100);
      const { final } = await assertExactlyOnce(f.farm, id, 200, (_key, nodes) => nodes[0] === 'gpu-node-1');
      // Its last upload was found stored by another node: at least one job ends skipped, and it is still announced.
      assert.ok((final.counts.skipped ?? 0) >= 1, JSON.stringify(final.counts));
    } finally {
      await f.stop();
    }
  });

  test('kill -9 the coordinator mid-sweep and start it again', async () => {
    const f = await faultFarm();
    try {
      // Shared with the PostgreSQL run in replicas.test.ts.
      await killCoordinatorMidSweep(f.farm);
    } finally {
      await f.stop();
    }
  });

  test('stop NATS for 20 s mid-sweep, then restart it', async () => {
    const f = await faultFarm({ renderDelayMs: 150 });
    try {
      const id = await submit(f.farm, SWEEP_200);
      await waitProgress(f.farm, id, 30);
      await f.farm.nats.stop();
      const during = await waitProgress(f.farm, id, 60);
      assert.ok(during.counts.done! >= 60, 'rendering goes on while NATS is down');
      await new Promise((r) => setTimeout(r, 20_000));
      await f.farm.nats.start();
      await assertExactlyOnce(f.farm, id, 200);
    } finally {
      await f.stop();
    }
  });

  test('stop the S3 server for 20 s mid-sweep, then restart it', async () => {
    const f = await faultFarm({ renderDelayMs: 100 });
    try {
      const id = await submit(f.farm, SWEEP_200);
      await waitProgress(f.farm, id, 40);
      await f.farm.s3.stop();
      await new Promise((r) => setTimeout(r, 3_000));
      const stalled = await sweep(f.farm, id);
      await new Promise((r) => setTimeout(r, 17_000));
      const still = await sweep(f.farm, id);
      // Nothing is marked done while its image cannot be stored.
      assert.equal(still.counts.done, stalled.counts.done, 'jobs were marked done while S3 was down');
      await f.farm.s3.start();
      await assertExactlyOnce(f.farm, id, 200);
    } finally {
      await f.stop();
    }
  });

  test('a node whose backend fails every job is blocklisted; the sweep still finishes', async () => {
    const f = await faultFarm({ nodeEnv: (i): Record<string, string> => (i === 2 ? { NIGHTSHIFT_FAULTS: 'fail-renders' } : {}) });
    try {
      const id = await submit(f.farm, SWEEP_200);
      await assertExactlyOnce(f.farm, id, 200);
      assert.equal(renders(f.farm).size, 200);
      assert.ok([...renders(f.farm).values()].every((n) => !n.includes('gpu-node-2')));
      const nodes = (await (await fetch(`${f.farm.apiUrl}/api/nodes`)).json()) as { nodes: { id: string; jobsDone: number }[] };
      assert.equal(nodes.nodes.find((n) => n.id === 'node-2')!.jobsDone, 0);
      const final = (await (await fetch(`${f.farm.apiUrl}/api/sweeps/${id}`)).json()) as { blocklisted: string[] };
      assert.deepEqual(final.blocklisted, ['node-2']);
    } finally {
      await f.stop();
    }
  });

  test('512×512 with a small-VRAM node and a large one: the small one never gets those jobs', async () => {
    const f = await faultFarm({
      nodes: 0,
      nodeEnv: (i) => ({ NIGHTSHIFT_NODE_VRAM_MB: i === 0 ? '8192' : '24576', NIGHTSHIFT_NODE_GPU: i === 0 ? 'GTX 1070' : 'RTX 3090' }),
    });
    try {
      f.farm.startNode(0);
      await waitForNodes(f.farm.apiUrl, 1);
      const id = await submit(f.farm, { ...SWEEP_200, params: { width: 512, height: 512, steps: 2 } });
      const waiting = await waitFor('an explanation', async () => {
        const s = await sweep(f.farm, id);
        return s.explain.length ? s : undefined;
      });
      assert.match(waiting.explain[0]!, /200 job\(s\) wait: no node with ≥ 10 GB VRAM and backend procedural/);
      assert.equal(waiting.counts.queued, 200);
      f.farm.startNode(1);
      await assertExactlyOnce(f.farm, id, 200);
      const byNode = [...renders(f.farm).values()].flat();
      assert.equal(byNode.length, 200);
      assert.ok(byNode.every((n) => n === 'gpu-node-1'), 'the 8 GB node rendered a 512×512 job');
    } finally {
      await f.stop();
    }
  });

  test('one-node farm: a flaky node retries its own failures; a broken one fails the sweep with a reason', async () => {
    const f = await faultFarm({ nodes: 1, env: { NIGHTSHIFT_FAULTS: 'fail-first-attempt', NIGHTSHIFT_BLOCKLIST_AFTER: '100' } });
    try {
      const id = await submit(f.farm, { ...SWEEP_200, prompts: ['a red circle'], axes: {}, seeds: { count: 3 } });
      await assertExactlyOnce(f.farm, id, 3);
      await f.farm.nodes[0]!.stop();
      f.farm.startNode(0);
      await waitForNodes(f.farm.apiUrl, 1);
      // After its restart the node is the same node-0, online, with its count kept, and not blocklisted.
      const { nodes } = (await (await fetch(`${f.farm.apiUrl}/api/nodes`)).json()) as { nodes: { id: string; status: string; jobsDone: number }[] };
      assert.deepEqual(nodes.map((n) => [n.id, n.status, n.jobsDone]), [['node-0', 'online', 3]]);
      const before = (await (await fetch(`${f.farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; blocklisted: string[] };
      assert.deepEqual([before.status, before.blocklisted], ['done', []]);
      // It still retries its own failures: a second sweep finishes on it alone, nothing from the first renders again.
      const again = await submit(f.farm, { ...SWEEP_200, prompts: ['a red circle'], axes: {}, seeds: { start: 3, count: 3 } });
      const after = await waitFinished(f.farm, again);
      assert.equal(after.status, 'done', JSON.stringify(after));
      assert.deepEqual([after.counts.done, after.counts.failed ?? 0], [3, 0], JSON.stringify(after.counts));
      assert.equal((await f.farm.storage.list('images')).length, 6);
      await waitFor('6 rendered events', async () => (await renderedEventCount(f.farm)) === 6, 60_000, 250);
      const nodesAfter = (await (await fetch(`${f.farm.apiUrl}/api/nodes`)).json()) as { nodes: { id: string; jobsDone: number }[] };
      assert.equal(nodesAfter.nodes.find((n) => n.id === 'node-0')!.jobsDone, 6);
    } finally {
      await f.stop();
    }
    const g = await faultFarm({ nodes: 1, env: { NIGHTSHIFT_FAULTS: 'fail-renders' } });
    try {
      const id = await submit(g.farm, { ...SWEEP_200, prompts: ['a blue square'], axes: {}, seeds: { count: 4 } });
      const final = await waitFor('the sweep to fail', async () => {
        const s = (await (await fetch(`${g.farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; failedJobs: { error: string }[]; blocklisted: string[] };
        return s.status === 'failed' ? s : undefined;
      }, 60_000, 200);
      assert.deepEqual(final.blocklisted, ['node-0']);
      assert.ok(final.failedJobs.some((j) => /no capable node left/.test(j.error)), JSON.stringify(final.failedJobs));
    } finally {
      await g.stop();
    }
  });

  test('out of memory: retried on a card with more VRAM, never on the same one', async () => {
    const f = await faultFarm({
      nodes: 2,
      nodeEnv: (i): Record<string, string> =>
        i === 0 ? { NIGHTSHIFT_FAULTS: 'oom-renders', NIGHTSHIFT_NODE_VRAM_MB: '12288' } : { NIGHTSHIFT_NODE_VRAM_MB: '24576', NIGHTSHIFT_FAULTS: 'render-delay-ms=150' },
    });
    try {
      const id = await submit(f.farm, { ...SWEEP_200, prompts: ['a red circle', 'a blue square'], axes: {}, seeds: { count: 10 } });
      await assertExactlyOnce(f.farm, id, 20);
      assert.ok([...renders(f.farm).values()].flat().every((n) => n === 'gpu-node-1'));
      // The small card failed some jobs with OOM; none of those went back to it.
      const log = (await import('node:fs')).readFileSync(`${f.farm.dir}/logs/coordinator.log`, 'utf8');
      const oomJobs = log.split('\n').filter((l) => l.includes('"msg":"job failed"') && l.includes('"oom":true')).map((l) => (JSON.parse(l) as { job: string; node: string }));
      assert.ok(oomJobs.length > 0, 'the small card never hit OOM');
      assert.ok(oomJobs.every((j) => j.node === 'node-0'));
      assert.equal(new Set(oomJobs.map((j) => j.job)).size, oomJobs.length, 'a job hit OOM twice: it went back to the card that was too small');
    } finally {
      await f.stop();
    }
  });

  test('stragglers: an idle node takes a copy of a slow job; the first result wins', async () => {
    const f = await faultFarm({
      nodes: 3,
      env: { NIGHTSHIFT_STRAGGLER_MIN_MS: '300' },
      nodeEnv: (i): Record<string, string> => ({ NIGHTSHIFT_FAULTS: `render-delay-ms=${i === 2 ? 6000 : 100}` }),
    });
    try {
      const id = await submit(f.farm, { ...SWEEP_200, prompts: ['a red circle'], axes: {}, seeds: { count: 24 } });
      // A job may render twice only as a deliberate copy: once on the slow node, once on the copy.
      const { twice } = await assertExactlyOnce(f.farm, id, 24, (_key, nodes) => nodes.length === 2);
      const log = (await import('node:fs')).readFileSync(`${f.farm.dir}/logs/coordinator.log`, 'utf8');
      const duplicated = log.split('\n').filter((l) => l.includes('straggler duplicated onto an idle node'));
      assert.ok(duplicated.length > 0, 'no straggler was duplicated');
      assert.ok(duplicated.every((l) => (JSON.parse(l) as { slowNode: string }).slowNode === 'node-2'));
      // From the coordinator's own audit: some copies won, and for those jobs the slow node's result
      // (if it came at all) was not the one taken.
      const audit = results(f.farm);
      const wonByCopy = audit.filter((r) => r.accepted && r.copy);
      assert.ok(wonByCopy.length > 0, 'no straggler copy delivered first');
      for (const r of wonByCopy) assert.ok(!audit.some((o) => o.job_id === r.job_id && o.accepted && o.node_id === 'node-2'), `job ${r.job_id} was taken from the slow node too`);
      assert.ok(twice.length <= duplicated.length);
    } finally {
      await f.stop();
    }
  });
});
