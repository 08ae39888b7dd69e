/**
 * Hostile gpu-nodes against a real farm (nats-server, s3rver, the
 * coordinator and one honest gpu-node as processes): a rogue NodeService
 * client, enrolled with a token of its own, tries to take over the honest
 * node's id, to complete jobs it does not hold, to report keys that are not
 * the job's, to report an image never uploaded, and to lease the whole queue
 * with 4,294,967,295 slots. Each gets its answer; the coordinator answers an
 * ordinary request right after; sweep counts in SQLite, objects in S3 and
 * messages in the stream are unchanged; an honest sweep still renders.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { imageKey, thumbKey } from '@nightshift/common';
import { ConnectRequestSchema, createClient, NodeService, type ConnectResponse } from '@nightshift/proto';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { attack as attackFarm } from './helpers.js';

const HONEST_TOKEN = 'honest-node-token-0123456789';
const ROGUE_TOKEN = 'rogue-node-token-9876543210';
const ORDINARY = { prompts: ['a red circle'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } };
/** Jobs only the rogue can take: the honest node has the procedural backend alone. */
const EXEC_ONLY = (count: number) => ({ prompts: ['rogue bait'], seeds: { count }, backend: 'exec', params: { width: 64, height: 64, steps: 1 } });

type NodeMessage = MessageInitShape<typeof ConnectRequestSchema>['msg'];

interface Rogue {
  received: ConnectResponse[];
  error(): grpc.ServiceError | undefined;
  say(msg: NodeMessage): void;
  cancels(): { jobId: string; reason: string }[];
  close(): void;
}

describe('hostile gpu-nodes', { timeout: 300_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;
  const rogues: Rogue[] = [];

  before(async () => {
    tmp = tempDir('nightshift-hostile-nodes-');
    farm = await startFarm({
      dir: tmp.dir,
      nodes: 1,
      indexer: false,
      env: { NIGHTSHIFT_NODE_TOKENS: `${HONEST_TOKEN},${ROGUE_TOKEN}` },
      nodeEnv: () => ({ NIGHTSHIFT_NODE_TOKEN: HONEST_TOKEN }),
    });
    await waitForNodes(farm.apiUrl, 1);
  });

  after(async () => {
    for (const r of rogues) r.close();
    await farm?.stop();
    tmp?.cleanup();
  });

  /** A NodeService client with the rogue's (enrolled) token that registers as `nodeId`. */
  function rogue(nodeId: string, caps: { backends: string[]; slots: number }): Rogue {
    const client = createClient(NodeService, farm.grpcAddress, grpc.credentials.createInsecure());
    const meta = new grpc.Metadata();
    meta.set('authorization', `Bearer ${ROGUE_TOKEN}`);
    const stream = client.connect(meta);
    const received: ConnectResponse[] = [];
    let error: grpc.ServiceError | undefined;
    stream.on('data', (r: ConnectResponse) => received.push(r));
    stream.on('error', (e: grpc.ServiceError) => (error = e));
    const say = (msg: NodeMessage) => stream.write(create(ConnectRequestSchema, { msg }));
    say({ case: 'register', value: { nodeId, name: nodeId, capabilities: { gpuName: 'rogue', vramMb: 24_576n, backends: caps.backends, models: [], slots: caps.slots } } });
    const r: Rogue = {
      received,
      error: () => error,
      say,
      cancels: () => received.flatMap((m) => (m.msg.case === 'cancel' ? [m.msg.value] : [])),
      close: () => {
        stream.cancel();
        client.close();
      },
    };
    rogues.push(r);
    return r;
  }

  const api = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${farm.apiUrl}${path}`, init);
    assert.ok(res.ok, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const submit = async (spec: unknown) =>
    (await api<{ id: string }>('/api/sweeps', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) })).id;
  const jobsOf = async (id: string) => (await api<{ jobs: { id: string; state: string; renderKey: string; node: string | null }[] }>(`/api/sweeps/${id}/jobs`)).jobs;

  // 500 ms for anything the attack set off to land: these attacks prove that nothing happens.
  const attack = <T>(run: () => Promise<T>) => attackFarm(farm, run, { settleMs: 500 });

  test("another enrolled token cannot take over the honest node's id", async () => {
    const thief = await attack(async () => {
      const r = rogue('node-0', { backends: ['procedural'], slots: 1 });
      await waitFor('the refusal', async () => r.error(), 10_000);
      return r;
    });
    assert.equal(thief.error()!.code, grpc.status.PERMISSION_DENIED);
    assert.match(thief.error()!.details, /node id node-0 is enrolled with another token/);
    assert.deepEqual(thief.received, [], 'no registration, no work');
    const nodes = (await api<{ nodes: { id: string; status: string; name: string }[] }>('/api/nodes')).nodes;
    assert.deepEqual(nodes.map((n) => [n.id, n.status, n.name]), [['node-0', 'online', 'node-0']], 'the honest node keeps its id and session');
  });

  test('a node cannot complete a job it does not hold, even one whose image is in storage', async () => {
    const id = await submit(EXEC_ONLY(2));
    const [job] = await jobsOf(id);
    assert.equal(job!.state, 'queued');
    // The strongest form: the job's own objects are even there.
    await farm.storage.put(imageKey(job!.renderKey), Buffer.from('not really a png'), 'image/png');
    await farm.storage.put(thumbKey(job!.renderKey), Buffer.from('not really a webp'), 'image/webp');
    const r = rogue('rogue-a', { backends: [], slots: 1 }); // takes no work of its own
    await waitFor('registered', async () => r.received.some((m) => m.msg.case === 'registered'), 10_000);
    await attack(async () => {
      r.say({ case: 'completed', value: { jobId: job!.id, renderKey: job!.renderKey, imageKey: imageKey(job!.renderKey), thumbKey: thumbKey(job!.renderKey), renderMs: 1 } });
      await waitFor('the answer', async () => r.cancels().length > 0, 10_000);
    });
    assert.equal(r.cancels()[0]!.jobId, job!.id);
    assert.match(r.cancels()[0]!.reason, /result refused: job \S+ is not leased to node rogue-a/);
    assert.equal((await jobsOf(id))[0]!.state, 'queued');
    await api(`/api/sweeps/${id}/cancel`, { method: 'POST' });
  });

  test('slots are capped; a holder cannot report keys that are not its job\'s, nor an image it never uploaded', async () => {
    const id = await submit(EXEC_ONLY(300));
    const greedy = rogue('rogue-greedy', { backends: ['exec'], slots: 4_294_967_295 });
    // 64 slots × 2 jobs prefetched per slot (the farm's default), not the 300 queued.
    await waitFor('leases', async () => (greedy.received.filter((m) => m.msg.case === 'assign').length >= 128 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const assigned = greedy.received.flatMap((m) => (m.msg.case === 'assign' ? [m.msg.value] : []));
    assert.equal(assigned.length, 128);
    assert.equal((await jobsOf(id)).filter((j) => j.node === 'rogue-greedy').length, 128);
    const [a, b] = assigned;
    await attack(async () => {
      greedy.say({ case: 'completed', value: { jobId: a!.jobId, renderKey: a!.renderKey, imageKey: imageKey(b!.renderKey), thumbKey: thumbKey(a!.renderKey), renderMs: 1 } });
      await waitFor('the wrong-key answer', async () => greedy.cancels().length === 1 || undefined, 10_000);
      greedy.say({ case: 'completed', value: { jobId: b!.jobId, renderKey: b!.renderKey, imageKey: imageKey(b!.renderKey), thumbKey: thumbKey(b!.renderKey), renderMs: 1 } });
      await waitFor('the missing-image answer', async () => greedy.cancels().length === 2 || undefined, 10_000);
    });
    assert.deepEqual(greedy.cancels().map((c) => c.jobId), [a!.jobId, b!.jobId]);
    assert.match(greedy.cancels()[0]!.reason, /not the job's own/);
    assert.match(greedy.cancels()[1]!.reason, /is not in storage/);
    const states = new Map((await jobsOf(id)).map((j) => [j.id, j.state]));
    assert.equal(states.get(a!.jobId), 'leased');
    assert.equal(states.get(b!.jobId), 'leased');
    await api(`/api/sweeps/${id}/cancel`, { method: 'POST' });
  });

  test('after all that, an honest sweep renders on the honest node', async () => {
    const id = await submit(ORDINARY);
    const done = await waitFor(
      'the honest sweep',
      async () => {
        const s = await api<{ status: string; counts: { done: number } }>(`/api/sweeps/${id}`);
        return s.status === 'done' ? s : undefined;
      },
      60_000,
      200,
    );
    assert.equal(done.counts.done, 2);
  });
});
