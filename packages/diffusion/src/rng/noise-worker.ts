// The worker thread of NoiseWorkers: draws a render's latent noise from its
// seeds' TorchGenerators ahead of the sampler, into a shared ring
// (noise-protocol.ts), so the torch-exact noise (~1 ms per 64×64 latent)
// runs while the main thread is blocked in the UNet's session.run. The same
// generators in the same order as batchNoise: the same values bit for bit.
import { parentPort } from 'node:worker_threads';
import { MADE, STOP, TAKEN, type FromWorker, type StartJob, type ToWorker } from './noise-protocol.js';
import { TorchGenerator } from './torch-generator.js';

const port = parentPort;
if (!port) throw new Error('noise-worker.ts runs as a worker thread (NoiseWorkers starts it)');
const post = (msg: FromWorker) => port.postMessage(msg);

/** Waits (blocking: this thread has nothing else to do) until slot d is free; false once stopped. */
function slotFree(control: Int32Array, d: number, slots: number): boolean {
  for (;;) {
    if (Atomics.load(control, STOP) !== 0) return false;
    const taken = Atomics.load(control, TAKEN);
    if (d - taken < slots) return true;
    // Bounded, so a lost wake-up costs a second, not the job.
    Atomics.wait(control, TAKEN, taken, 1000);
  }
}

function run(job: StartJob): void {
  const control = new Int32Array(job.control);
  const ring = new Float32Array(job.ring);
  const generators = job.seeds.map((s) => new TorchGenerator(s, job.normalKernel));
  const size = job.per * generators.length;
  for (let d = 0; d < job.draws; d++) {
    if (!slotFree(control, d, job.slots)) return;
    const at = (d % job.slots) * size;
    generators.forEach((g, k) => ring.set(g.randn(job.per), at + k * job.per));
    Atomics.store(control, MADE, d + 1);
    Atomics.notify(control, MADE);
  }
}

port.on('message', (job: ToWorker) => {
  try {
    run(job);
  } catch (err) {
    post({ kind: 'failed', id: job.id, message: err instanceof Error ? err.message : String(err) });
  }
  post({ kind: 'done', id: job.id });
});
