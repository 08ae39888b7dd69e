import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '@nightshift/devfarm';
import { storeEngineConformance } from './conformance.js';
import { SqliteEngine } from './sqlite.js';
import { report } from './conformance-helpers.js';

/** A big sweep's listeners in the conformance suite run to their end before its next part, however slow the box (sweep-parts.ts). */
const FILLS_WAIT_MS = 60_000;

storeEngineConformance('sqlite', {
  async fresh(clock) {
    const tmp = tempDir('nightshift-engine-');
    const engine = SqliteEngine.open(join(tmp.dir, 'coordinator.sqlite'), { now: () => clock.t, maxAttempts: 3, blocklistAfter: 3, firstFillsWaitMs: FILLS_WAIT_MS });
    const others: SqliteEngine[] = [];
    return {
      engine,
      // One process owns a SQLite file: another "connection" is another engine over the same Store.
      async another() {
        const other = new SqliteEngine(engine.store);
        others.push(other);
        return other;
      },
      async kill(e) {
        await e.close();
      },
      async close() {
        for (const o of others) await o.close();
        await engine.close();
        tmp.cleanup();
      },
    };
  },
});

test('settleIdleSweeps settles a sweep left open with every job ended; open and empty sweeps stay as they are', async () => {
  const tmp = tempDir('nightshift-engine-');
  const engine = SqliteEngine.open(join(tmp.dir, 'coordinator.sqlite'));
  try {
    const job = (i: number, tag: string) => ({ index: i, renderKey: `rk-${tag}`, prompt: 'p', seed: i, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 });
    await engine.createSweep({ name: 'idle', spec: {}, priority: 1, backend: 'procedural', model: 'm1' }, [job(0, 'idle')], 'sw-idle');
    await engine.createSweep({ name: 'open', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [job(0, 'open')], 'sw-open');
    await engine.createSweep({ name: 'empty', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [], 'sw-empty');
    const leased = (await engine.leaseNext('n1', { backends: ['procedural'], models: [], vramMb: 8_192 }, 30_000))!;
    assert.equal(leased.sweep_id, 'sw-idle');
    assert.equal((await engine.completeJob(leased.id, 'n1', report(leased))).accepted, true);
    assert.equal(await engine.settleIdleSweeps(), 0, 'the completion settled it');
    engine.store.db.prepare(`UPDATE sweeps SET status = 'running', finished_at = NULL WHERE id = 'sw-idle'`).run();
    assert.equal(await engine.settleIdleSweeps(), 1);
    assert.equal((await engine.getSweep('sw-idle'))!.status, 'done');
    assert.equal(await engine.settleIdleSweeps(), 0);
    assert.equal((await engine.getSweep('sw-open'))!.status, 'queued');
    assert.equal((await engine.getSweep('sw-empty'))!.status, 'queued');
  } finally {
    await engine.close();
    tmp.cleanup();
  }
});
