import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NoiseWorkers, localNoiseStream, type NoisePlan, type NoiseStream } from './noise-workers.js';
import { ringSlots } from './noise-protocol.js';
import { TorchGenerator, batchNoise } from './torch-generator.js';

const workers = new NoiseWorkers();
after(() => workers.close());

async function drawAll(stream: NoiseStream, size: number, draws: number): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let d = 0; d < draws; d++) {
    await stream.ready();
    out.push(stream.randn(size));
  }
  return out;
}

/** The same draws on this thread, as the sampler made them before workers. */
function reference(plan: NoisePlan): Float32Array[] {
  const gens = plan.seeds.map((s) => new TorchGenerator(s, plan.normalKernel));
  const source = gens.length === 1 ? gens[0]! : batchNoise(gens);
  return Array.from({ length: plan.draws }, () => source.randn(plan.per * plan.seeds.length));
}

const bits = (xs: Float32Array[]) => xs.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64'));

describe('noise drawn in worker threads', () => {
  test('equals the main thread generators bit for bit: one or several seeds, sizes below 16, ragged and whole chunks, both kernels', async () => {
    const plans: NoisePlan[] = [
      { seeds: [1234], per: 4 * 8 * 8, draws: 6 },
      { seeds: [0, 99, 7], per: 4 * 6 * 8, draws: 5 },
      { seeds: [42], per: 4, draws: 7 }, // < 16 values: the double path with its cached normal across draws
      { seeds: [5, 6], per: 4 * 3 * 5 + 0, draws: 4 }, // 60 values: a ragged tail
      { seeds: [2n ** 40n + 3n], per: 64, draws: 3, normalKernel: 'default' },
    ];
    // Two streams at once run on two workers and do not mix.
    const results = await Promise.all(plans.map((p) => drawAll(workers.stream(p), p.per * p.seeds.length, p.draws)));
    for (const [k, p] of plans.entries()) assert.deepEqual(bits(results[k]!), bits(reference(p)), `plan ${k}`);
    const local = localNoiseStream(plans[1]!);
    assert.deepEqual(bits(await drawAll(local, 3 * 4 * 6 * 8, 5)), bits(reference(plans[1]!)));
  });

  test('the first draw wanted before the worker made it is drawn on this thread; the rest still come from the worker, same values', async () => {
    // A fresh pool: its worker cannot have started (tens of ms) when ready() is called right away.
    const pool = new NoiseWorkers();
    try {
      const plan = { seeds: [21, 22], per: 4 * 8 * 8, draws: 5 };
      const stream = pool.stream(plan);
      assert.deepEqual(bits(await drawAll(stream, 2 * plan.per, plan.draws)), bits(reference(plan)));
    } finally {
      await pool.close();
    }
  });

  test('a worker serves the next render after one closed early, from that render’s own seeds', async () => {
    const plan = { seeds: [11], per: 256, draws: 50 };
    const early = workers.stream(plan);
    await early.ready();
    early.randn(256);
    early.close();
    await assert.rejects(early.ready(), /closed/);
    const next = { seeds: [12], per: 256, draws: 3 };
    assert.deepEqual(bits(await drawAll(workers.stream(next), 256, 3)), bits(reference(next)));
  });

  test('a render larger than the ring: the worker waits for free slots and is woken as they free up', async () => {
    const plan = { seeds: [77], per: 1 << 20, draws: 6 };
    assert.equal(ringSlots(plan.draws, plan.per), 4, 'four 4 MiB draws fit the 16 MiB ring, not six');
    assert.equal(ringSlots(21, 4 * 64 * 64), 21, 'a 512 px render: every draw ahead');
    const got = await drawAll(workers.stream(plan), plan.per, plan.draws);
    assert.deepEqual(bits(got), bits(reference(plan)));
  });

  test('draws outside the plan are refused with a clear error', async () => {
    const s = workers.stream({ seeds: [1], per: 32, draws: 1 });
    assert.throws(() => s.randn(31), /draws 32 values at a time, not 31/);
    await s.ready();
    s.randn(32);
    await s.ready(); // every planned draw taken: resolves at once
    assert.throws(() => s.randn(32), /all 1 planned noise draws are taken/);
    s.close();
    assert.throws(() => workers.stream({ seeds: [], per: 32, draws: 1 }), /at least one seed/);
    assert.throws(() => localNoiseStream({ seeds: [1], per: 0, draws: 1 }), /positive integer/);
  });

  test('closing the pool fails a stream still waiting for its worker', async () => {
    const pool = new NoiseWorkers();
    const s = pool.stream({ seeds: [3], per: 16, draws: 2 });
    const waiting = s.ready();
    await pool.close();
    // Either the first draw arrived before the worker stopped, or the wait fails; never a hang.
    await waiting.catch((err: Error) => assert.match(err.message, /noise worker exited/));
    assert.throws(() => pool.stream({ seeds: [3], per: 16, draws: 1 }), /closed/);
  });

  test('a worker that dies, or cannot start, costs the render nothing: its draws are made here, the same values', async () => {
    const plan = { seeds: [31, 32], per: 4 * 8 * 8, draws: 6 };
    // One exits at once; one exits when its job arrives (the render has drawn its first draw here by then).
    for (const source of [() => 'process.exit(3)', () => "require('node:worker_threads').parentPort.once('message', () => process.exit(4))"]) {
      const pool = new NoiseWorkers(source);
      try {
        assert.deepEqual(bits(await drawAll(pool.stream(plan), 2 * plan.per, plan.draws)), bits(reference(plan)));
      } finally {
        await pool.close();
      }
    }
    // A worker whose code does not even load: the same.
    const broken = new NoiseWorkers(() => 'import("/no/such/noise-worker.js")');
    try {
      assert.deepEqual(bits(await drawAll(broken.stream(plan), 2 * plan.per, plan.draws)), bits(reference(plan)));
    } finally {
      await broken.close();
    }
    // And no worker at all (its source throws): drawn here from the start.
    const none = new NoiseWorkers(() => {
      throw new Error('tsx cannot be resolved');
    });
    assert.deepEqual(bits(await drawAll(none.stream(plan), 2 * plan.per, plan.draws)), bits(reference(plan)));
    await none.close();
  });
});
