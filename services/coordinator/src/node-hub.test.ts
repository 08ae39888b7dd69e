/** The node hub over an in-memory Store with stand-in Connect streams: sessions and messages, no gRPC server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, type ConnectResponse } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type Committed } from './store.js';
import { Scheduler } from './scheduler.js';
import { Placement } from './placement.js';
import { Live, type LiveEvent } from './live.js';
import { NodeHub, type HubDeps, type HubOptions, type NodeStream } from './node-hub.js';

/** A Connect stream that records what the hub writes, and whether a transaction was open then. */
class FakeStream extends EventEmitter implements NodeStream {
  readonly metadata = new grpc.Metadata();
  readonly sent: { msg: ConnectResponse; inTransaction: boolean }[] = [];
  ended = false;
  constructor(private readonly store: Store) {
    super();
  }
  getPeer(): string {
    return 'test-peer';
  }
  write(msg: ConnectResponse): boolean {
    this.sent.push({ msg, inTransaction: this.store.db.inTransaction });
    return true;
  }
  end(): void {
    this.ended = true;
  }
  /** Sends one node message; the hub handles it on the next turn of the event loop. */
  say(msg: MessageInitShape<typeof ConnectRequestSchema>['msg']): void {
    this.emit('data', create(ConnectRequestSchema, { msg }));
  }
  cases(): string[] {
    return this.sent.map((s) => s.msg.msg.case ?? '');
  }
}

const OPTS: HubOptions = { leaseMs: 30_000, heartbeatMs: 1_000, nodeTimeoutMs: 60_000, prefetchPerSlot: 2, stragglerMinMs: Number.MAX_SAFE_INTEGER };

function setup(opts: Partial<HubOptions> = {}, placementOf?: (p: Placement) => HubDeps['placement']) {
  const store = new Store(openDb(':memory:'), { maxAttempts: 3, blocklistAfter: 3 });
  const live = new Live();
  const heard: Committed[] = [];
  store.onCommit((c) => heard.push(c));
  const progress: LiveEvent[] = [];
  live.subscribe((e) => progress.push(e));
  const placement: Placement = new Placement(store, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { store, scheduler: new Scheduler(store.db), placement: placementOf ? placementOf(placement) : placement, live, log: createLogger('hub-test', 'silent') },
    { ...OPTS, ...opts },
  );
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 4 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  heard.length = 0;
  const connect = (nodeId: string) => {
    const stream = new FakeStream(store);
    hub.handle(stream);
    stream.say({ case: 'register', value: { nodeId, name: nodeId, capabilities: { backends: ['procedural'], models: [], vramMb: 24_000n, slots: 1 } } });
    return stream;
  };
  return { store, hub, heard, progress, connect };
}

test('a registering node is told after the commit: registered, then leases up to its prefetch capacity', async () => {
  const { store, hub, heard, connect } = setup();
  const node = connect('n1');
  await turn();
  assert.deepEqual(node.cases(), ['registered', 'assign', 'assign']);
  assert.ok(node.sent.every((s) => !s.inTransaction), 'nothing is written to a node while the transaction is open');
  const assigned = node.sent.flatMap((s) => (s.msg.msg.case === 'assign' ? [s.msg.msg.value.jobId] : []));
  assert.deepEqual(store.leasedTo('n1').map((j) => j.id).sort(), assigned.sort(), 'what the node was told is what is committed');
  assert.equal(heard.length, 1, 'the register, its lease and the node.up event are one commit');
  assert.equal(heard[0]!.outbox, true);
  assert.deepEqual(heard[0]!.events, [{ type: 'node', nodeId: 'n1', status: 'online' }, { type: 'sweep', sweepId: 'sw' }]);
  hub.stop();
});

test('messages of one event-loop turn are handled in one transaction; a report refills the node', async () => {
  const { store, hub, heard, connect } = setup();
  const node = connect('n1');
  await turn();
  heard.length = 0;
  const [a, b] = store.leasedTo('n1');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  node.say({ case: 'completed', value: { jobId: a!.id, renderKey: a!.render_key, imageKey: `images/${a!.render_key}.png`, thumbKey: `thumbs/${a!.render_key}.webp`, renderMs: 5 } });
  node.say({ case: 'progress', value: { jobId: b!.id, step: 3, total: 10 } });
  await turn();
  assert.equal(heard.length, 1, 'one commit for the batch');
  assert.deepEqual(heard[0]!.events.map((e) => e.type), ['job', 'sweep']);
  assert.equal(store.getJob(a!.id)!.state, 'done');
  assert.deepEqual(node.cases().slice(3), ['assign'], 'the free slot is filled after the report');
  hub.stop();
});

test('a failure report goes to placement; the hub records nothing itself', async () => {
  const calls: unknown[][] = [];
  const { store, hub, connect } = setup({}, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    recordFailure: (...args) => {
      calls.push(args);
      return undefined;
    },
  }));
  const node = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'CUDA out of memory', outOfMemory: true, logTail: 'tail' } });
  await turn();
  assert.deepEqual(calls, [[a!.id, { id: 'n1', vramMb: 24_000 }, { error: 'CUDA out of memory', logTail: 'tail', outOfMemory: true }]]);
  assert.equal(store.getJob(a!.id)!.state, 'leased', 'the stand-in placement recorded nothing');
  hub.stop();
});

test('a silent node is marked down: its jobs are requeued and its stream ended', async () => {
  const { store, hub, heard, connect } = setup({ nodeTimeoutMs: 1 });
  const node = connect('n1');
  await turn();
  assert.equal(store.leasedTo('n1').length, 2);
  heard.length = 0;
  await new Promise((r) => setTimeout(r, 5));
  hub.tick();
  assert.equal(node.ended, true);
  assert.deepEqual(hub.connectedNodeIds(), []);
  assert.equal(store.leasedTo('n1').length, 0);
  assert.equal(store.counts('sw').queued, 4);
  assert.equal(heard.length, 1);
  assert.ok(heard[0]!.events.some((e) => e.type === 'node' && e.status === 'down'));
  hub.stop();
});

test('progress goes to live clients directly (nothing durable changes)', async () => {
  const { store, hub, progress, connect } = setup();
  const node = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'progress', value: { jobId: a!.id, step: 1, total: 4 } });
  await turn();
  assert.deepEqual(progress.filter((e) => e.type === 'progress'), [{ type: 'progress', sweepId: 'sw', jobId: a!.id, step: 1, total: 4 }]);
  hub.stop();
});
