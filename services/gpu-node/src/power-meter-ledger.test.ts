/** The energy integral on a hand-made clock: trapezoids, sharing between concurrent jobs, settling, gaps and unreadable samples. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnergyLedger } from './power-meter-ledger.js';

const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≠ ${expected}`);

test('trapezoids between samples, cut at the job edges', () => {
  const l = new EnergyLedger();
  l.sample(0, 100);
  const id = l.open(100);
  assert.deepEqual(l.sample(200, 200), []);
  l.sample(400, 200);
  l.close(id, 500);
  // 100→200 ms: the line from 100 W (t=0) to 200 W (t=200) is 150 W at t=100, mean 175 W over 0.1 s.
  // 200→400: 200 W over 0.2 s. 400→500: the line 200 W → 300 W (t=600) is 250 W at 500, mean 225 W over 0.1 s.
  assert.deepEqual(l.sample(600, 300), [id]);
  const r = l.take(id)!;
  assert.equal(r.measured, true);
  close(r.joules, 17.5 + 40 + 22.5);
  assert.equal(l.size, 0);
});

test('a job is not settled until a sample at or after its end', () => {
  const l = new EnergyLedger();
  l.sample(0, 50);
  const id = l.open(10);
  l.close(id, 90);
  assert.equal(l.result(id)!.done, false);
  assert.deepEqual(l.sample(100, 50), [id]);
  close(l.result(id)!.joules, 50 * 0.08);
});

test('two jobs at once share the draw; alone, each gets all of it', () => {
  const l = new EnergyLedger();
  l.sample(0, 300);
  const a = l.open(0);
  const b = l.open(500);
  l.close(a, 1_000);
  l.sample(1_000, 300);
  l.close(b, 1_500);
  l.sample(2_000, 300);
  // a: 0.5 s alone (150 J) + 0.5 s shared (75 J); b: 0.5 s shared (75 J) + 0.5 s alone (150 J).
  close(l.take(a)!.joules, 225);
  close(l.take(b)!.joules, 225);
});

test('before the first sample, the first reading is held back to the job start', () => {
  const l = new EnergyLedger();
  const id = l.open(0);
  l.sample(150, 120);
  l.sample(350, 120);
  l.close(id, 350);
  l.sample(350, 120);
  const r = l.take(id)!;
  assert.equal(r.done, true);
  close(r.joules, 120 * 0.35);
});

test('an unreadable sample or a gap leaves the running jobs unmeasured; later jobs are measured again', () => {
  const l = new EnergyLedger();
  l.sample(0, 100);
  const na = l.open(0);
  l.sample(100, Number.NaN);
  l.close(na, 150);
  l.sample(200, 100);
  assert.deepEqual(l.take(na), { done: true, measured: false, joules: 0 });

  const cut = l.open(200);
  l.gap();
  l.sample(300, 100);
  l.close(cut, 300);
  l.sample(400, 100);
  assert.deepEqual(l.take(cut), { done: true, measured: false, joules: 0 });

  const fine = l.open(400);
  l.close(fine, 600);
  l.sample(600, 100);
  assert.deepEqual(l.take(fine), { done: true, measured: true, joules: 20 });
});

test('a dropped job takes nothing, and its share goes to the job still running', () => {
  const l = new EnergyLedger();
  l.sample(0, 200);
  const kept = l.open(0);
  const dropped = l.open(0);
  l.drop(dropped);
  l.close(kept, 1_000);
  l.sample(1_000, 200);
  close(l.take(kept)!.joules, 200);
  assert.equal(l.result(dropped), undefined);
});
