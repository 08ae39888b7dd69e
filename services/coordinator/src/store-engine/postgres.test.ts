import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { postgresMissing, startPostgres, type PostgresServer } from '@nightshift/devfarm';
import { storeEngineConformance } from './conformance.js';
import { PostgresEngine } from './postgres.js';
import type { Wake } from './engine.js';

let server: PostgresServer | undefined;
let databases = 0;
const skip = postgresMissing();

if (!skip) {
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
}

/** Ends every session of an engine from outside, as when its replica's process dies. */
async function terminateSessions(url: string, applicationName: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    const pids = rows.map((r) => r.pid);
    await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    // Terminating only signals them: wait until those sessions have left pg_stat_activity, as a dead replica's have (a reconnect is a new one).
    while ((await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows.length) await delay(10);
  } finally {
    await admin.end();
  }
}

storeEngineConformance(
  'postgres',
  {
    async fresh(clock) {
      const url = await server!.createDatabase(`conformance_${++databases}`);
      const open = () => PostgresEngine.open({ url, now: () => clock.t, maxAttempts: 3, blocklistAfter: 3, poolSize: 8 });
      const engine = await open();
      const engines: PostgresEngine[] = [engine];
      return {
        engine,
        async another() {
          const other = await open();
          engines.push(other);
          return other;
        },
        async kill(e) {
          const victim = engines.find((x) => x === e);
          if (!victim) throw new Error('not an engine of this fixture');
          await terminateSessions(server!.url, victim.applicationName);
        },
        async close() {
          for (const e of engines) await e.close();
        },
      };
    },
  },
  { skip },
);

test('wake-ups survive a lost listening connection: it reconnects, wakes for both (a notification may have been missed) and tells change listeners to resync, and hears the next commit', { skip, timeout: 60_000 }, async () => {
  const url = await server!.createDatabase('wake_reconnect');
  const listening = await PostgresEngine.open({ url });
  const writer = await PostgresEngine.open({ url });
  try {
    const heard: Wake[] = [];
    let waiting: { pred: (w: Wake) => boolean; resolve: () => void } | undefined;
    const until = (pred: (w: Wake) => boolean) => new Promise<void>((resolve) => (waiting = { pred, resolve }));
    await listening.subscribe((w) => {
      heard.push(w);
      if (waiting?.pred(w)) waiting.resolve();
    });
    let resynced!: () => void;
    const resync = new Promise<void>((resolve) => (resynced = resolve));
    await listening.subscribeChanges((c) => c.type === 'resync' && resynced());
    const both = until((w) => w.jobs && w.outbox);
    await terminateSessions(url, listening.applicationName);
    await both;
    await resync;
    const jobs = until((w) => w.jobs && !w.outbox);
    await writer.createSweep({ name: 'after', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [], 'sw-after');
    await writer.createSweep(
      { name: 'after2', spec: {}, priority: 0, backend: 'procedural', model: 'm1' },
      [{ index: 0, renderKey: 'rk-after', prompt: 'p', seed: 1, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 }],
      'sw-after2',
    );
    await jobs;
    assert.ok(heard.length >= 2);
  } finally {
    await listening.close();
    await writer.close();
  }
});

test('a starting replica leaves online the nodes of replicas still running', { skip, timeout: 60_000 }, async () => {
  const url = await server!.createDatabase('nodes_replicas');
  const running = await PostgresEngine.open({ url });
  const starting = await PostgresEngine.open({ url });
  try {
    // A replica keeps its listening session open while it runs (its pool's may idle out).
    await running.subscribe(() => {});
    await running.nodes.upsertNode('n-running', 'a', {});
    await starting.nodes.upsertNode('n-starting', 'b', {});
    await starting.nodes.markAllNodesOffline();
    assert.deepEqual((await starting.nodes.listNodes()).map((n) => [n.id, n.status]), [
      ['n-running', 'online'],
      ['n-starting', 'offline'],
    ]);
  } finally {
    await running.close();
    await starting.close();
  }
});
