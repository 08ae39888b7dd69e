/**
 * The coordinator's background work over the store engine, on SQLite and on
 * PostgreSQL (a throwaway cluster, as store-engine/postgres.test.ts starts
 * it), with several replicas on one database: outbox publishing to a real
 * JetStream under one leader and moved to another replica when the holder's
 * engine closes, webhook deliveries sent once between two workers, and the
 * /metrics gauges read through the engine. On SQLite the "replicas" are
 * engines over one Store (one process owns the file).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { JetStreamClient } from '@nats-io/jetstream';
import { connectBus, createLogger, ensureStream, STREAM, SUBJECTS, type Bus } from '@nightshift/common';
import { postgresMissing, startNatsServer, startPostgres, tempDir, type NatsServer, type PostgresServer } from '@nightshift/devfarm';
import { openDb } from './db.js';
import { createCoordinatorMetrics } from './metrics.js';
import { OutboxPublisher } from './outbox.js';
import { WebhookWorker } from './webhooks-worker.js';
import type { StoreEngine } from './store-engine/engine.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { PostgresEngine } from './store-engine/postgres.js';
import { LEASE, PROC, newJobs } from './store-engine/conformance-helpers.js';

const log = createLogger('duties-test', 'silent');

/** Coordinator replicas on one database: each `open()` is another replica's engine. */
interface Replicas {
  open(): Promise<StoreEngine>;
  close(): Promise<void>;
}

let pgServer: PostgresServer | undefined;
let databases = 0;
const pgSkip = postgresMissing();

const engines: { name: string; skip: string | undefined; fresh(): Promise<Replicas> }[] = [
  {
    name: 'sqlite',
    skip: undefined,
    async fresh() {
      const store = new EngineStore(openDb(':memory:'));
      const opened: SqliteEngine[] = [];
      return {
        async open() {
          const e = new SqliteEngine(store);
          opened.push(e);
          return e;
        },
        async close() {
          for (const e of opened) await e.close();
          store.db.close();
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: pgSkip,
    async fresh() {
      const url = await pgServer!.createDatabase(`duties_${++databases}`);
      const opened: PostgresEngine[] = [];
      return {
        async open() {
          const e = await PostgresEngine.open({ url, poolSize: 4 });
          opened.push(e);
          return e;
        },
        async close() {
          for (const e of opened) await e.close();
        },
      };
    },
  },
];

let nats: NatsServer;
let bus: Bus;
const tmp = tempDir('nightshift-duties-');

before(async () => {
  nats = await startNatsServer(tmp.dir);
  bus = await connectBus(nats.url, 'duties-test', undefined, {});
  await ensureStream(bus.jsm, { maxAgeHours: 0, maxBytes: 0 });
  if (!pgSkip) pgServer = await startPostgres();
});

after(async () => {
  await bus?.nc.close();
  await nats?.stop();
  await pgServer?.close();
  tmp.cleanup();
});

/** Waits for a condition the code under test brings about (bounded, so a bug fails rather than hangs). */
async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** The real JetStream client, its publishes counted. */
function counted(js: JetStreamClient): { js: Pick<JetStreamClient, 'publish'>; n: number } {
  const c = {
    n: 0,
    js: {
      publish: (...args: Parameters<JetStreamClient['publish']>) => {
        c.n++;
        return js.publish(...args);
      },
    },
  };
  return c;
}

let run = 0;

for (const kind of engines) {
  describe(`background duties on ${kind.name}`, { skip: kind.skip }, () => {
    test('two outbox publishers on one database: one publishes (each event once), the other takes over when the holder\'s engine closes', { timeout: 60_000 }, async () => {
      const replicas = await kind.fresh();
      const tag = `${kind.name}${++run}`;
      try {
        const a = await replicas.open();
        const b = await replicas.open();
        const ja = counted(bus.js);
        const jb = counted(bus.js);
        // A dead replica never asks again: a's poll is longer than the test; b asks every 50 ms.
        const pa = new OutboxPublisher(a, () => ja.js, log, { pollMs: 600_000 });
        const pb = new OutboxPublisher(b, () => jb.js, log, { pollMs: 50 });
        pa.start();
        await until('a leads the outbox', () => pa.leading());
        pb.start();
        const append = async (e: StoreEngine, from: number, n: number) => {
          for (let i = from; i < from + n; i++) await e.appendEvent(`nightshift.test.${tag}.${i}`, `${tag}-${i}`, { i });
        };
        const drained = async () => (await b.listings.pendingEvents(1)).length === 0;
        // Events committed on both replicas: the leader publishes them all, woken by the commits.
        await append(a, 0, 20);
        await append(b, 20, 20);
        await until('40 events published', drained);
        assert.deepEqual([ja.n, jb.n], [40, 0], 'only the leader published, each event once');
        assert.equal(pb.leading(), false);

        await a.close(); // a's replica is gone: its session (and duty) with it
        await until('b takes the outbox over', () => pb.leading());
        await append(b, 40, 15);
        await until('15 more events published', drained);
        assert.deepEqual([ja.n, jb.n], [40, 15]);

        const info = await bus.jsm.streams.info(STREAM, { subjects_filter: `nightshift.test.${tag}.>` });
        const subjects = info.state.subjects ?? {};
        assert.equal(Object.keys(subjects).length, 55, 'every event in the stream');
        assert.ok(Object.values(subjects).every((n) => n === 1), 'each once');
        await pa.stop();
        await pb.stop();
      } finally {
        await replicas.close();
      }
    });

    test('two webhook workers on one database: every delivery sent once between them', { timeout: 60_000 }, async () => {
      const replicas = await kind.fresh();
      const got: string[] = [];
      // A receiver slow enough that both workers' POSTs overlap.
      const server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          got.push(String(req.headers['x-nightshift-event-id']));
          setTimeout(() => res.writeHead(200).end(), 20);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const workers: WebhookWorker[] = [];
      try {
        const a = await replicas.open();
        const b = await replicas.open();
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
        const hook = await a.webhooks.createWebhook({ url, events: ['node.down'], secret: 's', format: 'json', owner: 'local' });
        for (const e of [a, b]) workers.push(new WebhookWorker(e, log, { retryBaseMs: 1_000, retryForMs: 60_000, allow: [], batch: 4, claimedElsewhereMs: 20 }));
        for (const w of workers) w.start();
        const N = 30;
        for (let i = 0; i < N; i++) {
          await (i % 2 ? a : b).appendEvent(SUBJECTS.nodeDown, `node.down.n${i}`, { nodeId: `n${i}`, why: 'silent', requeued: 0, at: new Date().toISOString() });
        }
        const rows = async () => b.webhooks.webhookDeliveries(hook.id, 100);
        await until('every delivery delivered', async () => (await rows()).filter((d) => d.state === 'delivered').length === N);
        assert.equal(got.length, N, 'one POST per delivery');
        assert.equal(new Set(got).size, N);
        assert.ok((await rows()).every((d) => d.attempts === 1));
      } finally {
        for (const w of workers) await w.stop();
        await new Promise((r) => server.close(r));
        await replicas.close();
      }
    });

    test('/metrics gauges read through the engine: jobs by state, sweeps, nodes, unpublished events', async () => {
      const replicas = await kind.fresh();
      try {
        const a = await replicas.open();
        const b = await replicas.open();
        await a.createSweep({ name: 'm', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('m', 3), 'sw-m');
        await b.nodes.upsertNode('n1', 'gpu-one', {});
        assert.ok(await b.leaseNext('n1', PROC, LEASE));
        const text = await createCoordinatorMetrics(b, () => 0).registry.metrics();
        /** The sample of `name` whose labels start with `label` (the registry's own labels follow). */
        const value = (name: string, label = '') => Number(new RegExp(`^${name}(?:\\{${label}[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1]);
        assert.equal(value('nightshift_jobs', 'state="queued"'), 2);
        assert.equal(value('nightshift_jobs', 'state="leased"'), 1);
        assert.equal(value('nightshift_jobs', 'state="done"'), 0);
        assert.equal(value('nightshift_sweeps', `status="${(await a.getSweep('sw-m'))!.status}"`), 1);
        assert.equal(value('nightshift_nodes', 'status="offline"'), 1, 'one known, none connected here');
        assert.equal(value('nightshift_outbox_pending'), (await a.listings.pendingEvents(100)).length);
        assert.ok(value('nightshift_outbox_pending') >= 1, 'sweep.created at least');
      } finally {
        await replicas.close();
      }
    });
  });
}
