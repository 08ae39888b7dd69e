/**
 * A gpu-node killed with SIGKILL leaves its generator (own process group)
 * running, still holding the GPU. The node's next start on the same data
 * folder stops it before taking work.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { processAlive, startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const GENERATOR = fileURLToPath(new URL('../../examples/generators/node-generator.mjs', import.meta.url));
let farm: Farm | undefined;
const tmp = tempDir('nightshift-orphans-');

after(async () => {
  await farm?.stop();
  tmp.cleanup();
});

const alive = processAlive;

test('a restarted gpu-node stops the generators its killed predecessor left running', { timeout: 90_000 }, async () => {
  const pids = path.join(tmp.dir, 'pids');
  const config = path.join(tmp.dir, 'node.yaml');
  writeFileSync(
    config,
    toYaml({
      procedural: false,
      generators: [{ name: 'hang', command: ['node', GENERATOR, '--output={output}', `--spawn-child=${pids}`, '--simulate=hang'], timeoutMs: 600_000 }],
    }),
  );
  farm = await startFarm({ dir: tmp.dir, nodes: 1, nodeEnv: () => ({ NIGHTSHIFT_NODE_CONFIG: config }) });
  await waitForNodes(farm.apiUrl, 1);
  const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompts: ['x'], seeds: [1], backend: 'exec' }) });
  assert.equal(res.status, 201);
  const files = [path.join(pids, 'generator.pid'), path.join(pids, 'child.pid')];
  await waitFor('the generator and its child', () => files.every((f) => existsSync(f) && readFileSync(f, 'utf8').trim()), 30_000);
  const [generator, child] = files.map((f) => Number(readFileSync(f, 'utf8').trim())) as [number, number];

  await farm.nodes[0]!.kill9();
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(alive(generator) && alive(child), 'SIGKILL of the node should leave its generator group running (that is the problem)');

  farm.startNode(0);
  await waitFor('the leftover generator group to be stopped', () => !alive(generator) && !alive(child), 30_000);
  await waitForNodes(farm.apiUrl, 1);
});
