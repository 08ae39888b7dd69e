/** DutyLoop over the SQLite engine: runs a duty's work only while leading it, stops it when the leadership ends, asks again. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { openDb } from './db.js';
import { DutyLoop } from './duty-loop.js';
import type { Leadership, StoreEngine } from './store-engine/engine.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';

const log = createLogger('duty-loop-test', 'silent');

/** A duty whose work is a flag; each term's leadership and end are recorded. */
function recorder() {
  const terms: { leadership: Leadership; stopped: boolean }[] = [];
  let waiting: { n: number; resolve: () => void } | undefined;
  return {
    terms,
    onLead: (leadership: Leadership) => {
      const term = { leadership, stopped: false };
      terms.push(term);
      if (waiting && terms.length >= waiting.n) waiting.resolve();
      return async () => {
        term.stopped = true;
      };
    },
    /** Resolves once `n` terms have begun (the loop's own timers are unref'd: a ref'd one keeps the test's process alive meanwhile). */
    terms$: (n: number) => {
      const alive = setInterval(() => {}, 1_000);
      return new Promise<void>((resolve) => (terms.length >= n ? resolve() : (waiting = { n, resolve }))).finally(() => clearInterval(alive));
    },
  };
}

test('a lost leadership stops its work; the loop asks again and leads once the duty is free', async () => {
  const engine = new SqliteEngine(new EngineStore(openDb(':memory:')));
  const r = recorder();
  const loop = new DutyLoop(engine, { duty: 'd', onLead: r.onLead, log, pollMs: 5 });
  loop.start();
  await r.terms$(1);
  assert.equal(loop.leading(), true);
  // The leadership ends under it (on PostgreSQL: its session died).
  await r.terms[0]!.leadership.release();
  await r.terms$(2);
  assert.equal(r.terms[0]!.stopped, true, 'the first term\'s work was stopped');
  assert.equal(r.terms[1]!.stopped, false);
  assert.equal(loop.leading(), true);
  await loop.stop();
  assert.equal(r.terms[1]!.stopped, true);
  assert.equal(loop.leading(), false);
  const taken = await engine.lead('d');
  assert.ok(taken, 'stop released the duty');
  await taken.release();
  await engine.close();
});

test('stopped while lead() was answering: the leadership won meanwhile is released and no work starts', async () => {
  const engine = new SqliteEngine(new EngineStore(openDb(':memory:')));
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  // lead() answered only once the gate opens, as a slow leader connection would.
  const slow: Pick<StoreEngine, 'lead'> = {
    lead: async (duty) => {
      await gate;
      return engine.lead(duty);
    },
  };
  const r = recorder();
  const loop = new DutyLoop(slow, { duty: 'd', onLead: r.onLead, log });
  loop.start();
  const stopping = loop.stop();
  open();
  await stopping;
  assert.equal(r.terms.length, 0);
  const taken = await engine.lead('d');
  assert.ok(taken, 'the duty is free');
  await taken.release();
  await engine.close();
});
