/**
 * The power meter against a stub `nvidia-smi` on the PATH that prints chosen
 * wattages. The meter's clock is the test's: a job spans exactly the time
 * the test moves it by, so the integral is known exactly whatever moment
 * each reading arrives at.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PowerMeter } from './power-meter.js';
import { gpuLabel, gpuSelection, parseGpuLines, probeGpus } from './power-meter-gpu.js';
import { stubNvidiaSmi, type StubAnswers } from './nvidia-smi-stub.js';

const STUB_GPU = { name: 'NVIDIA Stub 4090', driver: '550.54.14' };

/** A meter on a stub whose clock moves only when the test says. */
async function meterOn(answers: StubAnswers) {
  const stub = stubNvidiaSmi({ gpus: [STUB_GPU], ...answers });
  let clock = 0;
  const meter = await PowerMeter.start({ env: stub.env, intervalMs: 50, now: () => clock });
  return {
    meter,
    advance: (ms: number) => void (clock += ms),
    cleanup: () => {
      meter.stop();
      stub.cleanup();
    },
  };
}

test('nvidia-smi lines: GPUs, names, the --id selection CUDA_VISIBLE_DEVICES gives', () => {
  assert.deepEqual(parseGpuLines('0, NVIDIA H200, 550.54.15\n1, NVIDIA H200, 550.54.15\nNo devices\n'), [
    { name: 'NVIDIA H200', driver: '550.54.15' },
    { name: 'NVIDIA H200', driver: '550.54.15' },
  ]);
  assert.equal(gpuLabel(['NVIDIA H200', 'NVIDIA H200']), '2× NVIDIA H200');
  assert.equal(gpuLabel(['NVIDIA A10', 'NVIDIA T4']), 'NVIDIA A10 + NVIDIA T4');
  assert.deepEqual(gpuSelection(undefined), []);
  assert.deepEqual(gpuSelection('1,GPU-8f3a'), ['--id=1,GPU-8f3a']);
  assert.equal(gpuSelection(''), null, 'no GPU visible: nothing to measure');
  assert.equal(gpuSelection('-1'), null);
  assert.deepEqual(gpuSelection('0; rm -rf /'), [], 'not an id list: not passed on');
});

test('a constant 150 W over a 2 s job is 300 J, with the GPU and driver named', async () => {
  const m = await meterOn({ watts: [150] });
  try {
    assert.equal(m.meter.measuring, true);
    const span = m.meter.begin();
    m.advance(2_000);
    assert.deepEqual(await span.end(), { gpuMs: 2_000, energyMeasured: true, energyJoules: 300, gpuName: STUB_GPU.name, driverVersion: STUB_GPU.driver });
  } finally {
    m.cleanup();
  }
});

test('several GPUs: each turn of readings adds up (100 W + 50 W for 1 s is 150 J)', async () => {
  const stub = stubNvidiaSmi({ gpus: [STUB_GPU, STUB_GPU], watts: [[100, 50]] });
  let clock = 0;
  const meter = await PowerMeter.start({ env: stub.env, intervalMs: 50, now: () => clock });
  try {
    assert.equal(meter.gpuName, `2× ${STUB_GPU.name}`);
    const span = meter.begin();
    clock += 1_000;
    assert.deepEqual(await span.end(), { gpuMs: 1_000, energyMeasured: true, energyJoules: 150, gpuName: `2× ${STUB_GPU.name}`, driverVersion: STUB_GPU.driver });
  } finally {
    meter.stop();
    stub.cleanup();
  }
});

test('two jobs at once on one GPU share its draw, and its busy time', async () => {
  const m = await meterOn({ watts: [200] });
  try {
    const a = m.meter.begin();
    const b = m.meter.begin();
    m.advance(1_000);
    const [ea, eb] = await Promise.all([a.end(), b.end()]);
    assert.equal(ea.energyJoules, 100);
    assert.equal(eb.energyJoules, 100);
    assert.deepEqual([ea.gpuMs, eb.gpuMs], [500, 500], 'one second of GPU, not two');
  } finally {
    m.cleanup();
  }
});

test('overlapping jobs: each gets its share of the busy time, split where the energy is split; the shares add up to the busy time', async () => {
  const m = await meterOn({ watts: [300] });
  try {
    // a: 0–3 s, b: 1–4 s, c: 6–7 s (after an idle second and more). Busy: 0–4 s and 6–7 s, 5 s in all.
    const a = m.meter.begin();
    m.advance(1_000);
    const b = m.meter.begin();
    m.advance(2_000);
    const ea = a.end();
    m.advance(1_000);
    const eb = b.end();
    m.advance(2_000);
    const c = m.meter.begin();
    m.advance(1_000);
    const costs = await Promise.all([ea, eb, c.end()]);
    // a: 1 s alone + half of 2 s shared; b: half of 2 s + 1 s alone; c: 1 s alone.
    assert.deepEqual(costs.map((x) => x.gpuMs), [2_000, 2_000, 1_000]);
    assert.equal(costs.reduce((t, x) => t + x.gpuMs, 0), 5_000, 'the busy time, not the 7 s the jobs lasted together');
    // Constant power: each job's energy is the power times its share of the time.
    assert.deepEqual(costs.map((x) => x.energyJoules), [600, 600, 300]);
  } finally {
    m.cleanup();
  }
});

test('a cancelled job takes no busy time: the others have it whole from then on', async () => {
  let clock = 0;
  const meter = new PowerMeter({ now: () => clock });
  const a = meter.begin();
  const b = meter.begin();
  clock += 1_000;
  b.cancel();
  clock += 1_000;
  // a: half of the first second (b had the other half, now reported by nobody) and the whole second.
  assert.deepEqual(await a.end(), { gpuMs: 1_500, energyMeasured: false, energyJoules: 0, gpuName: '', driverVersion: '' });
});

test('readings that are not numbers ("[N/A]") leave the job not measured, never estimated', async () => {
  const m = await meterOn({ watts: ['[N/A]'] });
  try {
    const span = m.meter.begin();
    m.advance(1_000);
    assert.deepEqual(await span.end(), { gpuMs: 1_000, energyMeasured: false, energyJoules: 0, gpuName: STUB_GPU.name, driverVersion: STUB_GPU.driver });
  } finally {
    m.cleanup();
  }
});

test('a cancelled job reports nothing and the meter carries on', async () => {
  const m = await meterOn({ watts: [80] });
  try {
    m.meter.begin().cancel();
    const span = m.meter.begin();
    m.advance(500);
    assert.equal((await span.end()).energyJoules, 40);
  } finally {
    m.cleanup();
  }
});

test('nvidia-smi dying during a job leaves that job not measured', async () => {
  const stub = stubNvidiaSmi({ gpus: [STUB_GPU], watts: [100], exitAfter: 2 });
  let clock = 0;
  let died!: () => void;
  const gone = new Promise<void>((r) => (died = r));
  const meter = new PowerMeter({ env: stub.env, gpu: await probeGpus(stub.env), intervalMs: 50, now: () => clock, log: { warn: () => died() } });
  try {
    const span = meter.begin();
    await gone;
    clock += 1_000;
    assert.deepEqual(await span.end(), { gpuMs: 1_000, energyMeasured: false, energyJoules: 0, gpuName: STUB_GPU.name, driverVersion: STUB_GPU.driver });
  } finally {
    meter.stop();
    stub.cleanup();
  }
});

test('without nvidia-smi: not measured, the configured GPU name, no driver', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'nightshift-nosmi-'));
  try {
    const env = { ...process.env, PATH: empty };
    assert.equal(await probeGpus(env), undefined);
    const meter = await PowerMeter.start({ env, fallbackGpuName: 'RTX 3090' });
    assert.equal(meter.measuring, false);
    const { gpuMs, ...energy } = await meter.begin().end();
    assert.ok(gpuMs >= 0, 'its GPU time still counts');
    assert.deepEqual(energy, { energyMeasured: false, energyJoules: 0, gpuName: 'RTX 3090', driverVersion: '' });
    meter.stop();
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('CUDA_VISIBLE_DEVICES="" hides the GPUs: nothing is measured even with nvidia-smi present', async () => {
  const stub = stubNvidiaSmi({ gpus: [STUB_GPU], watts: [100] });
  try {
    assert.equal(await probeGpus({ ...stub.env, CUDA_VISIBLE_DEVICES: '' }), undefined);
    assert.deepEqual(await probeGpus(stub.env), { names: [STUB_GPU.name], driver: STUB_GPU.driver, select: [] });
  } finally {
    stub.cleanup();
  }
});
