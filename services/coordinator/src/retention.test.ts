/** Retention: old published outbox rows and result audits go, in small batches, by an injected clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { HOUR_MS, Retention } from './retention.js';

/** A Store stand-in: rows stamped with a time; deletes what is older than the cut-off, `limit` at a time. */
function tables() {
  const outbox: number[] = [];
  const results: number[] = [];
  const batches: number[] = [];
  const prune = (rows: number[]) => (before: number, limit: number) => {
    let n = 0;
    for (let i = rows.length - 1; i >= 0 && n < limit; i--) {
      if (rows[i]! >= before) continue;
      rows.splice(i, 1);
      n++;
    }
    batches.push(n);
    return n;
  };
  return { outbox, results, batches, store: { pruneOutbox: prune(outbox), pruneResults: prune(results) } };
}

test('rows past their retention are deleted in batches; newer rows stay', async () => {
  const t = tables();
  const clock = { t: 100 * 24 * HOUR_MS };
  const now = clock.t;
  t.outbox.push(...Array.from({ length: 25 }, () => now - 25 * HOUR_MS), ...Array.from({ length: 3 }, () => now - 23 * HOUR_MS));
  t.results.push(...Array.from({ length: 7 }, () => now - 31 * 24 * HOUR_MS), now - 29 * 24 * HOUR_MS);
  const r = new Retention(t.store, createLogger('retention-test', 'silent'), { outboxMs: 24 * HOUR_MS, resultsMs: 30 * 24 * HOUR_MS, batch: 10, now: () => clock.t });
  assert.deepEqual(await r.prune(), { outbox: 25, results: 7 });
  assert.deepEqual(t.batches, [10, 10, 5, 7], 'batches of at most 10; a short batch ends the pass');
  assert.equal(t.outbox.length, 3);
  assert.equal(t.results.length, 1);
  // Two hours later the outbox rows 23 h old have aged past 24 h.
  clock.t += 2 * HOUR_MS;
  assert.deepEqual(await r.prune(), { outbox: 3, results: 0 });
});

test('the timer prunes on its own and does not keep the process alive; stop ends it', async () => {
  const t = tables();
  t.outbox.push(0);
  const r = new Retention(t.store, createLogger('retention-test', 'silent'), { outboxMs: 1, resultsMs: 1, everyMs: 5, now: () => 10 });
  r.start();
  const deadline = Date.now() + 2_000;
  while (t.outbox.length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.equal(t.outbox.length, 0);
  await r.stop();
  const after = t.batches.length;
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(t.batches.length, after, 'no pass after stop');
});
