/**
 * A gpu-node given several coordinator addresses (issue 12), with real
 * processes: it joins the second when the first is dead at start, and when
 * its coordinator is killed mid-sweep it follows a coordinator started on its
 * other address over the same data folder (as a replica taking over the
 * shared database would), re-registering the jobs it holds there; the sweep
 * ends with exactly its images and every job's result accepted once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FOUR_IMAGES, freePort, SERVICE_MAIN, startFarm, startProcess, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { assertExactlyOnce, FAST_FAILOVER, nodeHeldJobs, results, submit, sweep } from '../faults/helpers.js';

interface LogLine {
  msg: string;
  coordinator?: string;
  node?: string;
  held?: number;
}

/** JSON log lines of one of the farm's processes, from byte `from` on. */
function logLines(farm: Farm, file: string, from = 0): LogLine[] {
  const text = readFileSync(join(farm.dir, 'logs', file)).subarray(from).toString('utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

const logSize = (farm: Farm, file: string) => readFileSync(join(farm.dir, 'logs', file)).length;

test('a node whose first coordinator address is dead at start joins the second', async () => {
  const tmp = tempDir('nightshift-node-failover-');
  const [dead, grpc] = [await freePort(), await freePort()];
  const farm = await startFarm({
    dir: tmp.dir,
    nodes: 1,
    ports: { grpc },
    env: FAST_FAILOVER,
    nodeEnv: () => ({ NIGHTSHIFT_COORDINATOR: `127.0.0.1:${dead},127.0.0.1:${grpc}` }),
  });
  try {
    await waitForNodes(farm.apiUrl, 1);
    // The coordinator counts the node online before the node has logged its Registered answer
    // (and the log file is written through a pipe): wait for the line, which comes after the
    // failed first attempt's line in the same stream.
    await waitFor('the node to log its registration', () => logLines(farm, 'gpu-node-0.log').some((l) => l.msg === 'registered with coordinator'), 30_000);
    const node = logLines(farm, 'gpu-node-0.log');
    assert.equal(node.find((l) => l.msg === 'coordinator connection lost, reconnecting')?.coordinator, `127.0.0.1:${dead}`, 'the dead address was tried first');
    assert.deepEqual(node.filter((l) => l.msg === 'registered with coordinator').map((l) => l.coordinator), [`127.0.0.1:${grpc}`]);
    const id = await submit(farm, FOUR_IMAGES);
    await assertExactlyOnce(farm, id, 4);
  } finally {
    await farm.stop();
    tmp.cleanup();
  }
});

test('the coordinator killed mid-sweep: the node follows one started on its other address and re-registers its held jobs', async () => {
  const tmp = tempDir('nightshift-node-failover-');
  const [first, second, nodeMetrics] = [await freePort(), await freePort(), await freePort()];
  const farm = await startFarm({
    dir: tmp.dir,
    nodes: 1,
    ports: { grpc: first },
    env: { ...FAST_FAILOVER, NIGHTSHIFT_FAULTS: 'render-delay-ms=100' },
    nodeEnv: () => ({ NIGHTSHIFT_COORDINATOR: `127.0.0.1:${first},127.0.0.1:${second}`, NIGHTSHIFT_NODE_METRICS_PORT: String(nodeMetrics) }),
  });
  try {
    await waitForNodes(farm.apiUrl, 1);
    const spec = { prompts: ['a red circle', 'a blue square', 'green stripes'], seeds: { count: 8 }, params: { width: 64, height: 64, steps: 2 } };
    // With S3 away the node can finish nothing (it first asks storage whether each image exists), so it provably
    // holds jobs across the switch. S3 goes before the sweep starts: stopped once some images were done, a
    // loaded machine could finish the whole sweep (2.4 s of renders) before the stop took effect.
    // Its first registration's line reaches the log file on its own schedule (through a pipe): wait for it, so that
    // only a later registration is read after `nodeFrom` (CI once found the first one there).
    await waitFor('the node to log its first registration', () => logLines(farm, 'gpu-node-0.log').some((l) => l.msg === 'registered with coordinator'), 30_000);
    const nodeFrom = logSize(farm, 'gpu-node-0.log');
    await farm.s3.stop();
    const id = await submit(farm, spec);
    // Held by the node itself: a lease can be committed before its assignment reaches the node.
    await waitFor('the node to hold jobs', async () => ((await sweep(farm, id)).counts.running ?? 0) >= 1 && (await nodeHeldJobs(nodeMetrics)) >= 1, 60_000);
    await farm.coordinator.kill9();
    // The replica: the same data folder (the shared database, for now one SQLite file), serving gRPC on the node's other address.
    farm.env.NIGHTSHIFT_GRPC_PORT = String(second);
    const coordinatorFrom = logSize(farm, 'coordinator.log');
    await farm.startCoordinator();
    const joined = await waitFor('the node to join the second address', () => logLines(farm, 'gpu-node-0.log', nodeFrom).find((l) => l.msg === 'registered with coordinator'), 60_000);
    assert.equal(joined.coordinator, `127.0.0.1:${second}`);
    assert.ok((joined.held ?? 0) >= 1, `the node re-registered the jobs it held (${joined.held})`);
    // Each process's log reaches its file on its own schedule: wait for the coordinator's line too.
    const seen = await waitFor('the coordinator to log the registration', () => logLines(farm, 'coordinator.log', coordinatorFrom).find((l) => l.msg === 'node registered' && l.node === 'node-0'), 30_000);
    assert.equal(seen.held, joined.held, 'the new coordinator was told of the held jobs');
    await farm.s3.start();
    await assertExactlyOnce(farm, id, 24);
    assert.equal(results(farm).filter((r) => r.accepted && r.node_id === 'node-0').length, 24, 'every result accepted came from the node');
  } finally {
    await farm.stop();
    tmp.cleanup();
  }
});

test('a bad coordinator list stops the node at start with an error naming the entry', async () => {
  const tmp = tempDir('nightshift-node-failover-');
  try {
    const env = { ...process.env, NIGHTSHIFT_COORDINATOR: '127.0.0.1:7070,coordinator-b', NIGHTSHIFT_DATA_DIR: tmp.dir, NIGHTSHIFT_MODEL_CACHE: join(tmp.dir, 'models') };
    const p = startProcess('gpu-node', process.execPath, ['--import', 'tsx', SERVICE_MAIN['gpu-node']], { env });
    const code = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.output(), /NIGHTSHIFT_COORDINATOR: "coordinator-b" is not host:port/);
  } finally {
    tmp.cleanup();
  }
});
