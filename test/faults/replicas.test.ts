/**
 * The fault suite's key scenarios on PostgreSQL (issue 12), with real
 * processes: a throwaway Debian PostgreSQL, nats-server, s3rver, coordinator
 * replicas and three gpu-nodes. Two replicas share the database; the nodes
 * are connected to replica 0 when it is killed with -9 mid-sweep, move to
 * replica 1 re-registering the jobs they hold, and the sweep ends with
 * exactly 200 images and 200 events, nothing rendered twice without a reason
 * in a replica's log. Skipped only where PostgreSQL is not installed.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, postgresMissing, waitFor, type Farm } from '@nightshift/devfarm';
import { assertExactlyOnce, faultFarm, killCoordinatorMidSweep, killNodeMidSweep, logLines, nodeHeldJobs, logSize, renderedEventCount, submit, sweep, SWEEP_200, viaReplica, waitProgress, type LogLine } from './helpers.js';

const NODES = ['gpu-node-0', 'gpu-node-1', 'gpu-node-2'];
const REGISTERED = 'registered with coordinator';

/** Every replica's lines that say why a node's jobs went back to the queue, with the node ids they name. */
function requeues(farm: Farm): { nodes: string[]; time: number; msg: string }[] {
  return farm.coordinators.flatMap((c) =>
    logLines(farm, c.logFile.split('/').at(-1)!)
      .filter((l) => l.msg === 'leases expired, jobs requeued' || l.msg === 'node marked down, jobs requeued')
      .map((l) => ({ nodes: Array.isArray(l.nodes) ? (l.nodes as string[]) : [String(l.node)], time: l.time, msg: l.msg })),
  );
}

/** Every gpu-node's `rendered` line: which job, which render key, when. */
function renderLines(farm: Farm): (LogLine & { node: string })[] {
  return NODES.flatMap((n) => logLines(farm, `${n}.log`).filter((l) => l.msg === 'rendered').map((l) => ({ ...l, node: n })));
}

const leadsOutbox = (l: LogLine) => l.msg === 'duty: leading' && l.duty === 'outbox';

/**
 * Two replicas, the nodes on replica 0, which is killed with -9 once 50 images are done. With
 * `storageAway` S3 is stopped first and the kill waits for a node to hold a rendered image it
 * cannot upload, so the nodes provably re-register held jobs (without it they may finish their
 * few prefetched 60 ms renders within the ~250 ms before they reconnect, and report them then).
 */
async function killReplicaMidSweep(t: TestContext, storageAway: boolean): Promise<void> {
  const f = await faultFarm({ replicas: 2 });
  try {
    const [first, second] = f.farm.coordinators as [Farm['coordinators'][0], Farm['coordinators'][0]];
    // The nodes were given replica 0's address first: all of them are on it.
    await waitFor('every node to register with replica 0', () => NODES.every((n) => logLines(f.farm, `${n}.log`).some((l) => l.msg === REGISTERED)), 30_000);
    for (const n of NODES) assert.deepEqual(logLines(f.farm, `${n}.log`).filter((l) => l.msg === REGISTERED).map((l) => l.coordinator), [first.grpcAddress], n);
    // Replica 0 started first and took the outbox; the kill must move it for the events to keep coming.
    await waitFor('replica 0 to lead the outbox', () => logLines(f.farm, 'coordinator.log').some(leadsOutbox), 30_000);
    assert.ok(!logLines(f.farm, 'coordinator-1.log').some(leadsOutbox), 'replica 1 leads the outbox too');

    const id = await submit(f.farm, SWEEP_200);
    await waitProgress(f.farm, id, 50);
    const nodeFrom = new Map(NODES.map((n) => [n, logSize(f.farm, `${n}.log`)]));
    if (storageAway) {
      // Killed, not stopped: a stopping s3rver still served the nodes' open keep-alive connections, so an
      // upload that failed once could then succeed and the node hold nothing at the kill (CI saw 0,0,0).
      await f.farm.s3.kill();
      // Refused proves S3 is gone: that upload can only end when S3 is back (or its job is cancelled).
      await waitFor('a node to hold a rendered image it cannot upload', () => NODES.some((n) => logLines(f.farm, `${n}.log`, nodeFrom.get(n)).some((l) => l.msg === 'upload failed, retrying' && /ECONNREFUSED/.test(String(l.err)))), 60_000);
    }
    const secondFrom = logSize(f.farm, 'coordinator-1.log');
    await first.kill9();
    const eventsAtKill = await renderedEventCount(f.farm);
    const killedAt = Date.now();

    const joined = await waitFor('every node to register with replica 1', () => {
      const lines = NODES.map((n) => logLines(f.farm, `${n}.log`, nodeFrom.get(n)).find((l) => l.msg === REGISTERED));
      return lines.every(Boolean) ? (lines as LogLine[]) : undefined;
    }, 60_000);
    assert.deepEqual(joined.map((l) => l.coordinator), NODES.map(() => second.grpcAddress));
    const held = joined.map((l) => Number(l.held ?? 0));
    if (storageAway) assert.ok(held.reduce((a, b) => a + b, 0) >= 1, `the nodes re-registered the jobs they held (${held})`);
    // Replica 1 was told of those jobs (each process's log reaches its file on its own schedule: wait for its lines).
    const seen = await waitFor('replica 1 to log the registrations', () => {
      const lines = logLines(f.farm, 'coordinator-1.log', secondFrom).filter((l) => l.msg === 'node registered');
      return NODES.every((_n, i) => lines.some((l) => l.node === `node-${i}`)) ? lines : undefined;
    }, 30_000);
    for (const [i, h] of held.entries()) assert.equal(seen.find((l) => l.node === `node-${i}`)!.held, h, `node-${i}'s held jobs`);
    if (storageAway) await f.farm.s3.start();

    // A job may render twice only when a replica logged why its first node's work went back to the queue, before the second render.
    const reasons: string[] = [];
    const allowedTwice = (key: string, nodes: string[]) => {
      const last = Math.max(...renderLines(f.farm).filter((l) => l.renderKey === key).map((l) => l.time));
      const why = requeues(f.farm).find((r) => r.nodes.includes(nodes[0]!.replace('gpu-', '')) && r.time <= last);
      if (why) reasons.push(`${key}: ${nodes.join(' then ')} (${why.msg})`);
      return why !== undefined;
    };
    const { twice } = await assertExactlyOnce(viaReplica(f.farm, 1), id, 200, allowedTwice);
    // The outbox moved: events published after the kill came from replica 1, the new leader.
    assert.ok(eventsAtKill < 200, `all 200 events were out before the kill (${eventsAtKill})`);
    assert.ok(logLines(f.farm, 'coordinator-1.log', secondFrom).some(leadsOutbox), 'replica 1 never took the outbox over');
    t.diagnostic(`events at the kill ${eventsAtKill}; held at re-registration ${held}; rendered twice ${twice.length}${reasons.length ? `: ${reasons.join('; ')}` : ''}; ${Date.now() - killedAt} ms from the kill to the audit's end`);
  } finally {
    await f.stop();
  }
}

describe('PostgreSQL: the fault suite\'s key scenarios', { skip: postgresMissing(), timeout: 600_000 }, () => {
  test('two replicas: kill -9 the one the nodes are connected to mid-sweep; they move to the other, 200 images, 200 events', (t) => killReplicaMidSweep(t, false));

  test('two replicas, S3 away: the nodes hold rendered jobs when their replica is killed and re-register them with the other', (t) => killReplicaMidSweep(t, true));

  test('two replicas: a sweep cancelled through the replica the nodes are not on stops their renders (their heartbeats hear it)', async () => {
    const metricsPorts = [await freePort(), await freePort(), await freePort()];
    // Renders that would take ten minutes: a node holds its jobs until it is told to stop.
    const f = await faultFarm({ replicas: 2, renderDelayMs: 600_000, nodeEnv: (i: number) => ({ NIGHTSHIFT_NODE_METRICS_PORT: String(metricsPorts[i]) }) });
    try {
      const [first, second] = f.farm.coordinators as [Farm['coordinators'][0], Farm['coordinators'][0]];
      await waitFor('every node to register with replica 0', () => NODES.every((n) => logLines(f.farm, `${n}.log`).some((l) => l.msg === REGISTERED)), 30_000);
      for (const n of NODES) assert.deepEqual(logLines(f.farm, `${n}.log`).filter((l) => l.msg === REGISTERED).map((l) => l.coordinator), [first.grpcAddress], n);
      const held = () => Promise.all(metricsPorts.map(nodeHeldJobs));
      const id = await submit(f.farm, { prompts: ['a red circle'], seeds: { count: 12 }, params: { width: 64, height: 64, steps: 2 } });
      await waitFor('every node to hold jobs', async () => (await held()).every((n) => n >= 1), 30_000);
      const res = await fetch(`${second.apiUrl}/api/sweeps/${id}/cancel`, { method: 'POST' });
      assert.equal(res.status, 200, await res.text());
      // Replica 0 made no cancel and its hub was never asked: only the nodes' heartbeats there can tell them.
      await waitFor('every node to drop the cancelled jobs', async () => (await held()).every((n) => n === 0), 30_000);
      assert.equal(NODES.flatMap((n) => logLines(f.farm, `${n}.log`).filter((l) => l.msg === 'rendered')).length, 0, 'no render finished');
      assert.equal((await sweep(viaReplica(f.farm, 0), id)).status, 'cancelled');
    } finally {
      await f.stop();
    }
  });

  test('one replica: kill -9 one gpu-node mid-job (the SQLite suite\'s scenario)', async () => {
    const f = await faultFarm({ postgres: true });
    try {
      assert.ok(f.farm.database, 'the farm runs on PostgreSQL');
      await killNodeMidSweep(f.farm);
    } finally {
      await f.stop();
    }
  });

  test('one replica: kill -9 the coordinator mid-sweep and start it again (the SQLite suite\'s scenario)', async () => {
    const f = await faultFarm({ postgres: true });
    try {
      await killCoordinatorMidSweep(f.farm);
    } finally {
      await f.stop();
    }
  });
});
