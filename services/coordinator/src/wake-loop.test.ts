import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WakeLoop } from './wake-loop.js';

// The loop's timers are unref'd (the coordinator's servers keep it alive): so must the test be.
const keepAlive = setInterval(() => {}, 60_000);
test.after(() => clearInterval(keepAlive));

/** Resolves when `n` passes have started. */
function counter() {
  let passes = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    get passes() {
      return passes;
    },
    hit() {
      passes++;
      for (const w of waiters.filter((x) => x.n <= passes)) w.resolve();
    },
    reached: (n: number) => new Promise<void>((resolve) => (n <= passes ? resolve() : waiters.push({ n, resolve }))),
  };
}

test('a poke runs a pass at once; a poke during a pass runs another right after it, never two at once', async () => {
  const c = counter();
  let inPass = 0;
  let maxInPass = 0;
  let release: () => void = () => {};
  const loop = new WakeLoop({
    pass: async () => {
      c.hit();
      maxInPass = Math.max(maxInPass, ++inPass);
      if (c.passes === 2) await new Promise<void>((r) => (release = r)); // the second pass waits for the test
      inPass--;
      return 3_600_000; // the idle sleep never ends within the test: only pokes drive passes
    },
    onError: () => 3_600_000,
  });
  loop.start();
  await c.reached(1);
  loop.poke();
  await c.reached(2);
  loop.poke(); // during the second pass
  loop.poke();
  release();
  await c.reached(3);
  await loop.stop();
  assert.equal(c.passes, 3, 'two pokes during one pass make one more pass');
  assert.equal(maxInPass, 1);
});

test('a failing pass is retried after the delay onError returns; stop waits for the pass under way', async () => {
  const c = counter();
  const errors: unknown[] = [];
  let finished = false;
  const loop = new WakeLoop({
    pass: async () => {
      c.hit();
      if (c.passes === 1) throw new Error('boom');
      await new Promise((r) => setImmediate(r));
      finished = true;
      return 3_600_000;
    },
    onError: (err) => {
      errors.push(err);
      return 0;
    },
  });
  loop.start();
  await c.reached(2);
  await loop.stop();
  assert.equal(finished, true, 'stop() resolved only after the second pass ended');
  assert.equal((errors[0] as Error).message, 'boom');
  loop.poke();
  assert.equal(c.passes, 2, 'nothing runs after stop');
});
