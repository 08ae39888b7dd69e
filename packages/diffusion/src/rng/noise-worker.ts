// The worker thread of NoiseWorkers: draws a render's latent noise from its
// seeds' TorchGenerators ahead of the sampler, one draw per message (its
// buffer transferred, not copied), so the torch-exact noise (~1 ms per
// 64×64 latent) runs while the main thread is blocked in the UNet's
// session.run. The same generators in the same order as batchNoise: the same
// values bit for bit.
import { parentPort } from 'node:worker_threads';
import type { FromWorker, StartJob, ToWorker } from './noise-protocol.js';
import { TorchGenerator } from './torch-generator.js';

interface Job {
  id: number;
  generators: TorchGenerator[];
  per: number;
  draws: number;
  made: number;
  allowed: number;
}

const port = parentPort;
if (!port) throw new Error('noise-worker.ts runs as a worker thread (NoiseWorkers starts it)');
let job: Job | undefined;
let scheduled = false;

const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

function start(m: StartJob): void {
  job = { id: m.id, generators: m.seeds.map((s) => new TorchGenerator(s, m.normalKernel)), per: m.per, draws: m.draws, made: 0, allowed: m.ahead };
  if (m.draws === 0) finish();
  else schedule();
}

function finish(): void {
  if (job) post({ kind: 'done', id: job.id });
  job = undefined;
}

/** One draw per macrotask, so 'more' and 'stop' are read between draws. */
function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(drawNext);
}

function drawNext(): void {
  scheduled = false;
  const j = job;
  if (!j || j.made >= j.allowed) return;
  let data: Float32Array;
  try {
    if (j.generators.length === 1) data = j.generators[0]!.randn(j.per);
    else {
      data = new Float32Array(j.per * j.generators.length);
      j.generators.forEach((g, k) => data.set(g.randn(j.per), k * j.per));
    }
  } catch (err) {
    post({ kind: 'failed', id: j.id, message: err instanceof Error ? err.message : String(err) });
    finish();
    return;
  }
  j.made++;
  post({ kind: 'draw', id: j.id, data }, [data.buffer as ArrayBuffer]);
  if (j.made === j.draws) finish();
  else schedule();
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'start') start(m);
  else if (job?.id !== m.id) return;
  else if (m.kind === 'more') {
    job.allowed++;
    schedule();
  } else finish();
});
