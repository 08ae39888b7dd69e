/** A node that leaves the farm (its schedule, a busy GPU, a pause): what it hands back is requeued, nothing is sent to it until it rejoins. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, type ConnectResponse } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { Placement } from './placement.js';
import { Live } from './live.js';
import { NodeHub, nodeSleepView, type NodeStream } from './node-hub.js';

class FakeStream extends EventEmitter implements NodeStream {
  readonly metadata = new grpc.Metadata();
  readonly sent: ConnectResponse[] = [];
  getPeer(): string {
    return 'test-peer';
  }
  write(msg: ConnectResponse): boolean {
    this.sent.push(msg);
    return true;
  }
  end(): void {}
  say(msg: MessageInitShape<typeof ConnectRequestSchema>['msg']): void {
    this.emit('data', create(ConnectRequestSchema, { msg }));
  }
  assigned(): string[] {
    return this.sent.flatMap((m) => (m.msg.case === 'assign' ? [m.msg.value.jobId] : []));
  }
}

function setup() {
  const store = new EngineStore(openDb(':memory:'), { maxAttempts: 3, blocklistAfter: 3 });
  const engine = new SqliteEngine(store);
  const placement: Placement = new Placement(engine, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { engine, placement, live: new Live(), log: createLogger('hub-test', 'silent'), storage: { exists: async () => false } },
    { leaseMs: 30_000, heartbeatMs: 1_000, nodeTimeoutMs: 60_000, prefetchPerSlot: 2, stragglerMinMs: Number.MAX_SAFE_INTEGER, storageAttempts: 1 },
  );
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 6 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  const connect = (nodeId: string, availability?: { accepting: boolean; reason: string; untilMs: bigint; untilLocal: string }) => {
    const stream = new FakeStream();
    hub.handle(stream);
    stream.say({ case: 'register', value: { nodeId, name: nodeId, capabilities: { backends: ['procedural'], models: [], vramMb: 24_000n, slots: 1 }, ...(availability ? { availability } : {}) } });
    return stream;
  };
  return { store, hub, connect };
}

const UNTIL = Date.UTC(2026, 10, 30, 23, 0);

test('a node leaving hands its jobs back: requeued at once, not attempts spent; nothing more is sent until it rejoins', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  const held = node.assigned();
  assert.equal(held.length, 2);
  node.say({ case: 'availability', value: { accepting: false, reason: 'schedule', untilMs: BigInt(UNTIL), untilLocal: '23:00', releasedJobIds: held } });
  await hub.settled();
  assert.deepEqual(store.leasedTo('n1'), [], 'handed-back jobs are no longer leased to it');
  for (const id of held) {
    const job = store.getJob(id)!;
    assert.equal(job.state, 'queued');
    assert.equal(job.attempts, 0, 'a lease handed back on leaving is not an attempt');
    assert.equal(job.node_id, null);
  }
  assert.deepEqual(hub.sleepOf('n1'), { reason: 'schedule', untilMs: UNTIL, untilLocal: '23:00' });
  assert.deepEqual(nodeSleepView(hub.sleepOf('n1')), { reason: 'schedule', until: new Date(UNTIL).toISOString(), untilLocal: '23:00', label: 'sleeping until 23:00' });
  await hub.tick();
  await hub.settled();
  assert.equal(node.assigned().length, 2, 'a sleeping node gets no work on later ticks');

  // Another node takes the handed-back jobs.
  const other = connect('n2');
  await hub.settled();
  assert.ok(other.assigned().some((id) => held.includes(id)), 'the requeued jobs go to a node that works');

  node.say({ case: 'availability', value: { accepting: true, reason: '', untilMs: 0n, untilLocal: '', releasedJobIds: [] } });
  await hub.settled();
  assert.equal(hub.sleepOf('n1'), undefined);
  assert.equal(node.assigned().length, 4, 'rejoined: filled up to its prefetch capacity again');
  hub.stop();
});

test('a node that registers asleep gets nothing; a pause by hand is relayed to a connected node only', async () => {
  const { hub, connect } = setup();
  const node = connect('n1', { accepting: false, reason: 'gpu-busy', untilMs: 0n, untilLocal: '' });
  await hub.settled();
  assert.deepEqual(node.assigned(), []);
  assert.equal(nodeSleepView(hub.sleepOf('n1'))?.label, 'sleeping: GPU in use');
  assert.equal(hub.setPaused('n1', true), true);
  const last = node.sent.at(-1)?.msg;
  assert.equal(last?.case, 'setPaused');
  assert.equal(last?.case === 'setPaused' && last.value.paused, true);
  assert.equal(hub.setPaused('nobody', true), false);
  hub.stop();
});
