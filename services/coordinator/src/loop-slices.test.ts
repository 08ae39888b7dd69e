import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoopSlices } from './loop-slices.js';
import { KeyedQueue } from './keyed-queue.js';

/** Counts event-loop turns (one per check phase) until stopped. */
function turns(): { now(): number; stop(): void } {
  let n = 0;
  let on = true;
  const next = () => {
    n++;
    if (on) setImmediate(next);
  };
  setImmediate(next);
  return { now: () => n, stop: () => void (on = false) };
}

test('work past the turn budget starts in later turns, a budget each, in order; each piece counts with its own microtasks', async () => {
  let clock = 0;
  const slices = new LoopSlices(10, () => clock);
  const turn = turns();
  const ran: { piece: number; turn: number }[] = [];
  // Each piece awaits before it spends its 4 ms: the next may start only once those microtasks are done.
  const piece = (i: number) => async () => {
    await null;
    await null;
    clock += 4;
    ran.push({ piece: i, turn: turn.now() });
    return i;
  };
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => slices.run(piece(i))));
  turn.stop();
  assert.deepEqual(results, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(ran.map((r) => r.piece), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in the order admitted');
  const groups = [ran.slice(0, 3), ran.slice(3, 6), ran.slice(6, 9), ran.slice(9)].map((g) => [...new Set(g.map((r) => r.turn))]);
  // 4 ms pieces under a 10 ms budget: three a turn (started at 0, 4 and 8 ms into it).
  for (const g of groups) assert.equal(g.length, 1, `a slice runs within one turn: ${JSON.stringify(ran)}`);
  assert.equal(groups[0]![0], 0, 'the first slice runs at once');
  for (let i = 1; i < groups.length; i++) assert.ok(groups[i]![0]! > groups[i - 1]![0]!, `each slice in a later turn: ${JSON.stringify(ran)}`);
  // A drain that runs out of budget goes on in the very next turn (no turn is skipped).
  for (let i = 2; i < groups.length; i++) assert.equal(groups[i]![0]!, groups[i - 1]![0]! + 1, `drains in consecutive turns: ${JSON.stringify(ran)}`);
  assert.equal(slices.queued, 0);
});

test('a piece that spends the whole budget runs alone in its turn, in the first turn and in every later one', async () => {
  let clock = 0;
  const slices = new LoopSlices(10, () => clock);
  const turn = turns();
  const ran: number[] = [];
  // 11 ms each, spent after a few microtasks: a piece that started before the one before it had spent its time would share its turn.
  const piece = () => async () => {
    await null;
    await null;
    clock += 11;
    ran.push(turn.now());
  };
  await Promise.all(Array.from({ length: 5 }, () => slices.run(piece())));
  turn.stop();
  assert.equal(new Set(ran).size, 5, `one piece a turn: ${JSON.stringify(ran)}`);
});

test('a failing piece settles its own call; the rest still run', async () => {
  let clock = 0;
  const slices = new LoopSlices(1, () => clock);
  const first = slices.run(async () => void (clock += 5));
  const failing = slices.run(async () => {
    throw new Error('boom');
  });
  const last = slices.run(async () => 'last');
  await first;
  await assert.rejects(failing, /boom/);
  assert.equal(await last, 'last');
});

test('a keyed queue with slices keeps each key in order and runs every key', async () => {
  let clock = 0;
  const q = new KeyedQueue(new LoopSlices(3, () => clock));
  const log: string[] = [];
  const work = (name: string) => async () => {
    clock += 2;
    await null;
    log.push(name);
  };
  await Promise.all(['a1', 'b1', 'a2', 'b2', 'a3'].map((name) => q.run(name[0]!, work(name))));
  assert.deepEqual(log.filter((n) => n.startsWith('a')), ['a1', 'a2', 'a3']);
  assert.deepEqual(log.filter((n) => n.startsWith('b')), ['b1', 'b2']);
  await q.idle();
  assert.equal(q.size, 0);
});
