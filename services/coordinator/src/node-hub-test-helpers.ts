/** Shared by the node hub's tests: stand-in Connect streams and storage, and a hub over an in-memory Store. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, type ConnectResponse } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type Committed, type JobRow } from './store.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { ownKeys } from './store/completion.js';
import { Placement } from './placement.js';
import { Live, type LiveEvent } from './live.js';
import { NodeHub, type HubDeps, type HubOptions, type NodeStream } from './node-hub.js';


/** A Connect stream that records what the hub writes, and whether a transaction was open then. */
export class FakeStream extends EventEmitter implements NodeStream {
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

export const OPTS: HubOptions = { leaseMs: 30_000, heartbeatMs: 1_000, nodeTimeoutMs: 60_000, prefetchPerSlot: 2, stragglerMinMs: Number.MAX_SAFE_INTEGER };

/** Storage as the hub sees it: which objects exist (a real HEAD is async, so this one is too). */
export class FakeStorage {
  readonly objects = new Set<string>();
  heads = 0;
  private gate: Promise<void> | undefined;
  async exists(key: string): Promise<boolean> {
    this.heads++;
    await Promise.resolve();
    await this.gate;
    return this.objects.has(key);
  }
  /** Lookups wait until the returned function is called (a slow bucket). */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise((r) => (release = r));
    return () => {
      this.gate = undefined;
      release();
    };
  }
  /** What a node uploads for a job before reporting it. */
  upload(job: JobRow): void {
    const own = ownKeys(job);
    for (const key of [own.imageKey, own.thumbKey]) if (key) this.objects.add(key);
  }
}

/** Turns of the event loop until `cond` holds (a reported result waits for its storage check, a retry for its backoff). */
export async function until(cond: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), 'condition not reached');
}

export function setup(opts: Partial<HubOptions> = {}, placementOf?: (p: Placement) => HubDeps['placement'], db = openDb(':memory:')) {
  const store = new EngineStore(db, { maxAttempts: 3, blocklistAfter: 3 });
  const engine = new SqliteEngine(store);
  const storage = new FakeStorage();
  const live = new Live();
  const heard: Committed[] = [];
  store.onCommit((c) => heard.push(c));
  const progress: LiveEvent[] = [];
  live.subscribe((e) => progress.push(e));
  const placement: Placement = new Placement(engine, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { engine, placement: placementOf ? placementOf(placement) : placement, live, log: createLogger('hub-test', 'silent'), storage },
    { ...OPTS, storageAttempts: 1, ...opts },
  );
  // As the coordinator runs it (app.ts): one transaction per event-loop turn.
  store.batchTurns(
    (err) => hub.resync(err),
    (err) => {
      throw err;
    },
  );
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 4 } });
  if (!store.getSweep('sw')) store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  heard.length = 0;
  const connect = (nodeId: string, o: { slots?: number; token?: string; backends?: string[]; vramMb?: bigint } = {}) => {
    const stream = new FakeStream(store);
    if (o.token) stream.metadata.set('authorization', `Bearer ${o.token}`);
    hub.handle(stream);
    stream.say({ case: 'register', value: { nodeId, name: nodeId, capabilities: { backends: o.backends ?? ['procedural'], models: [], vramMb: o.vramMb ?? 24_000n, slots: o.slots ?? 1 } } });
    return stream;
  };
  return { store, engine, hub, heard, progress, connect, storage };
}

/** A node's report that `job` is done, with the job's own keys unless told otherwise. */
export const done = (job: JobRow, keys: Partial<{ imageKey: string; thumbKey: string; model: string; renderMs: number }> = {}) =>
  ({ case: 'completed', value: { jobId: job.id, renderKey: job.render_key, ...ownKeys(job), renderMs: 5, ...keys } }) as const;

export const cancels = (stream: FakeStream) => stream.sent.flatMap((s) => (s.msg.msg.case === 'cancel' ? [s.msg.msg.value] : []));
