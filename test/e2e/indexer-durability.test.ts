/**
 * The indexer as a real process over real nats-server and s3rver: crashes
 * between embedding/storing and acking (an env-var fault hook SIGKILLs the
 * process there), redeliveries, restarts, and a 1,000-event burst.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { connectBus, ensureStream, Storage, STREAM, type Bus } from '@nightshift/common';
import { eachLimit, fixtureImage, type FixtureImage, freePort, type ManagedProcess, type NatsServer, publishRendered, putFixture, type S3Server, SERVICE_MAIN, startNatsServer, startProcess, startS3Server, tempDir, waitFor } from '@nightshift/devfarm';

interface Health {
  indexed: number;
  catalog: number;
  openedBy: string;
  consumer: { indexed: number; skipped: number; maxInFlight: number };
}

const PROMPTS = ['a red circle', 'a blue square', 'green stripes', 'a yellow triangle'];
/** The indexer's durable for rendered images (CONSUMER in services/indexer/src/consumer.ts). */
const DURABLE = 'indexer';
const BATCH = 8;
const CONCURRENCY = 1;
/** Events the indexer may hold unacked at once: one batch per worker. */
const IN_FLIGHT_BOUND = BATCH * CONCURRENCY;

describe('indexer durability', { timeout: 180_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let nats: NatsServer;
  let s3: S3Server;
  let storage: Storage;
  let bus: Bus;
  let port: number;
  let proc: ManagedProcess | undefined;
  const fixtures: FixtureImage[] = [];
  const dataDir = () => join(tmp.dir, 'indexer');

  function start(env: Record<string, string> = {}): ManagedProcess {
    proc = startProcess('indexer', process.execPath, ['--import', 'tsx', SERVICE_MAIN.indexer], {
      env: {
        ...process.env,
        NIGHTSHIFT_NATS_URL: nats.url,
        NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
        NIGHTSHIFT_DATA_DIR: dataDir(),
        NIGHTSHIFT_INDEXER_PORT: String(port),
        NIGHTSHIFT_INDEXER_BATCH: String(BATCH),
        NIGHTSHIFT_INDEXER_CONCURRENCY: String(CONCURRENCY),
        NIGHTSHIFT_INDEXER_ACK_WAIT_S: '2',
        NIGHTSHIFT_LOG_LEVEL: 'info',
        ...env,
      },
      logFile: join(tmp.dir, 'indexer.log'),
    });
    return proc;
  }
  const health = async () => (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as Health;
  const ready = (p: ManagedProcess) =>
    waitFor('indexer /healthz', async () => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`indexer exited:\n${p.output()}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok;
    }, 60_000);
  const rows = () => {
    const db = new Database(join(dataDir(), 'indexer.sqlite'), { readonly: true });
    try {
      return db.prepare('SELECT render_key FROM images').pluck().all() as string[];
    } finally {
      db.close();
    }
  };
  const search = async (q: string) => (await (await fetch(`http://127.0.0.1:${port}/api/search?q=${encodeURIComponent(q)}&k=500`)).json()) as { results: { key: string; score: number }[] };

  before(async () => {
    tmp = tempDir('nightshift-indexer-e2e-');
    [nats, s3, port] = await Promise.all([startNatsServer(join(tmp.dir, 'nats')), startS3Server(join(tmp.dir, 's3')), freePort()]);
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    bus = await connectBus(nats.url, 'test');
    await ensureStream(bus.jsm);
    for (let i = 0; i < 48; i++) fixtures.push(await fixtureImage({ prompt: PROMPTS[i % PROMPTS.length]!, seed: i, size: 64, createdAt: new Date(Date.UTC(2026, 2, 1, 22, 0, i)).toISOString() }));
    await eachLimit(fixtures, 8, (f) => putFixture(storage, f));
  });

  after(async () => {
    await proc?.stop();
    await bus?.nc.close();
    await Promise.all([nats?.stop(), s3?.stop()]);
    tmp?.cleanup();
  });

  test('a crash after embedding, or after storing but before acking, loses nothing and duplicates nothing', async () => {
    for (const f of fixtures) await publishRendered(bus, f.event);

    // 1. Killed after embedding the first batch: nothing stored, nothing acked.
    let p = start({ NIGHTSHIFT_INDEXER_FAULT: 'crash-after-embed:1' });
    await p.exited;
    assert.equal(p.child.signalCode, 'SIGKILL');
    assert.equal(rows().length, 0);

    // 2. Killed after storing the second batch, before its ack: 16 rows, 8 of them unacked.
    p = start({ NIGHTSHIFT_INDEXER_FAULT: 'crash-after-store:2' });
    await p.exited;
    assert.equal(p.child.signalCode, 'SIGKILL');
    assert.equal(rows().length, 16);
    const info = await bus.jsm.consumers.info(STREAM, DURABLE);
    // The stored batch was never acked (step 1's batch may still be pending too, if its ack wait has not run out).
    assert.ok(info.num_ack_pending >= 8, `ack pending ${info.num_ack_pending}`);

    // 3. A clean start: the 8 redelivered events are recognised as stored and acked without work.
    p = start();
    await ready(p);
    await waitFor('48 searchable images', async () => (await health()).indexed === 48, 60_000, 100);
    const h = await health();
    assert.equal(h.catalog, 48);
    assert.ok(h.consumer.skipped >= 8, `skipped ${h.consumer.skipped}`);
    assert.equal(h.consumer.indexed, 32, 'only the 32 never-stored images were embedded');
    assert.equal(new Set(rows()).size, 48);
    const all = (await search('circle')).results;
    assert.equal(all.length, 48);
    assert.equal(new Set(all.map((r) => r.key)).size, 48);
    await waitFor('every event acked', async () => {
      const c = await bus.jsm.consumers.info(STREAM, DURABLE);
      return c.num_ack_pending === 0 && c.num_pending === 0;
    }, 20_000);

    // 4. The same events published again (no Nats-Msg-Id dedup): still one entry each.
    for (const f of fixtures) await publishRendered(bus, f.event, { dedupe: false });
    await waitFor('re-published events acked', async () => (await health()).consumer.skipped >= h.consumer.skipped + 48, 20_000, 100);
    assert.equal((await health()).catalog, 48);
    assert.equal((await search('circle')).results.length, 48);
  });

  test('a restart keeps the index: loaded from its snapshot, nothing re-embedded, same answers', async () => {
    const before = await search('red');
    await proc!.stop();
    const p = start();
    await ready(p);
    const h = await health();
    assert.equal(h.indexed, 48);
    assert.equal(h.openedBy, 'snapshot');
    assert.equal(h.consumer.indexed, 0);
    assert.deepEqual(await search('red'), before);
  });

  test('a 1,000-event burst is indexed with bounded work in flight and bounded memory', async () => {
    const pid = proc!.child.pid!;
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    const baseline = rss();
    // 1,000 new renders (objects reuse the 48 images' bytes under new keys), all queued at once.
    const burst = Array.from({ length: 1000 }, (_, i) => {
      const f = fixtures[i % fixtures.length]!;
      const renderKey = `burst-${String(i).padStart(4, '0')}`;
      return { png: f.png, event: { ...f.event, renderKey, key: `images/${renderKey}.png`, createdAt: new Date(Date.UTC(2026, 2, 2, 0, 0, 0, i)).toISOString() } };
    });
    await eachLimit(burst, 16, (f) => putFixture(storage, f));
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 25);
    // In flight as the server sees it: events delivered to the indexer and not yet acked, polled throughout the burst.
    const ackPending = { max: 0, samples: 0, polling: true };
    const poller = (async () => {
      while (ackPending.polling) {
        const c = await bus.jsm.consumers.info(STREAM, DURABLE);
        ackPending.max = Math.max(ackPending.max, c.num_ack_pending);
        ackPending.samples++;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const started = performance.now();
    try {
      await Promise.all(burst.map((f) => publishRendered(bus, f.event)));
      await waitFor('1,048 searchable images', async () => (await health()).indexed === 1048, 120_000, 100);
    } finally {
      clearInterval(sampler);
      ackPending.polling = false;
      await poller;
    }
    const seconds = (performance.now() - started) / 1000;
    const h = await health();
    console.log(`# burst: 1,000 events indexed in ${seconds.toFixed(1)} s; RSS ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB; ack pending at most ${ackPending.max} of ${IN_FLIGHT_BOUND} over ${ackPending.samples} samples`);
    assert.equal(h.consumer.maxInFlight, IN_FLIGHT_BOUND, 'the indexer reports the bound it was configured with');
    assert.ok(ackPending.max > 0, `no event was ever seen in flight in ${ackPending.samples} samples: the bound check saw nothing`);
    assert.ok(ackPending.max <= IN_FLIGHT_BOUND, `JetStream saw ${ackPending.max} events unacked at once > bound ${IN_FLIGHT_BOUND}`);
    // The process holds at most one batch of images at a time: memory does not follow the burst.
    assert.ok(peak - baseline < 150, `RSS grew by ${(peak - baseline).toFixed(0)} MB`);
    assert.equal(h.catalog, 1048);
  });
});
