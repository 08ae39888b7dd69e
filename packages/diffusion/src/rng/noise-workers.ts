/// <reference lib="es2024.sharedmemory" />
// A render's latent noise drawn ahead in worker threads. onnxruntime-node's
// session.run blocks the main thread for the whole UNet step, so noise drawn
// on it (torch's CPU normal transform in JS: ~1 ms per 64×64 latent, every
// step for Euler a) adds to every step; drawn in a worker it runs during the
// step and the sampler finds it waiting. The draws are a plan fixed up front
// (how many, how many values each): the same generators, seeds and order as
// on the main thread, so the same values bit for bit (noise-workers.test.ts).
// Draws pass through shared memory (noise-protocol.ts), no message per draw.
//
// Use: const noise = workers.stream({ seeds, per, draws }); before each draw
// `await noise.ready()`, then `noise.randn(n)` as from a TorchGenerator
// (batchNoise's layout for several seeds); `noise.close()` when done.
import { Worker } from 'node:worker_threads';
import { CONTROL_INTS, MADE, ringSlots, STOP, TAKEN, type FromWorker, type StartJob } from './noise-protocol.js';
import { TorchGenerator, batchNoise, type NoiseSource, type NormalKernel } from './torch-generator.js';

/** A planned noise source: randn only after ready() resolved, and only as many draws as planned. */
export interface NoiseStream extends NoiseSource {
  /** Resolves once the next draw can be taken (at once when every planned draw is taken); rejects if its worker failed. */
  ready(): Promise<void>;
  /** Ends the stream (its worker stops drawing and serves the next render). */
  close(): void;
}

export interface NoisePlan {
  /** One generator per image. */
  seeds: readonly (number | bigint)[];
  /** Values per image and draw (every draw of a render is one latent: initial noise, img2img's, each step's). */
  per: number;
  /** How many draws the render makes. */
  draws: number;
  normalKernel?: NormalKernel;
}

/** Idle workers kept for the next renders (a worker costs a few MB and tens of ms to start). */
const KEEP_IDLE = 2;

function checkPlan(plan: NoisePlan): void {
  if (plan.seeds.length < 1) throw new RangeError('a noise plan needs at least one seed');
  if (!Number.isSafeInteger(plan.per) || plan.per < 1) throw new RangeError(`values per draw must be a positive integer, got ${plan.per}`);
  if (!Number.isSafeInteger(plan.draws) || plan.draws < 0) throw new RangeError(`draws must be a non-negative integer, got ${plan.draws}`);
}

/** The main thread's side of one job's ring. */
class SharedDraws implements NoiseStream {
  readonly control = new SharedArrayBuffer(CONTROL_INTS * 4);
  readonly ringBuffer: SharedArrayBuffer;
  private readonly ctrl = new Int32Array(this.control);
  private readonly ring: Float32Array;
  private taken = 0;
  private closed = false;
  private failure: Error | undefined;
  /** Rejects when the job fails (raced against the wait for a draw). */
  private readonly failed: Promise<never>;
  private rejectFailed!: (err: Error) => void;
  /** The first draw, made on this thread because the worker had not made it when it was wanted. */
  private first: Float32Array | undefined;
  /** Set once the worker is lost: the rest of the plan, drawn on this thread from the same seeds. */
  private local: NoiseSource | undefined;
  private readonly size: number;
  private readonly draws: number;
  readonly slots: number;

  constructor(private readonly plan: NoisePlan) {
    this.size = plan.per * plan.seeds.length;
    this.draws = plan.draws;
    const size = this.size;
    this.slots = ringSlots(this.draws, size);
    this.ringBuffer = new SharedArrayBuffer(this.slots * size * 4);
    this.ring = new Float32Array(this.ringBuffer);
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => {}); // observed through ready()
  }

  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectFailed(err);
    Atomics.notify(this.ctrl, MADE); // a waitAsync left pending would hold this ring for good
  }

  /**
   * The worker failed or exited: the render does not. Its remaining draws
   * are made on this thread by generators of the same seeds, advanced past
   * the draws already taken (and a first draw made here), so the values are
   * the ones the worker would have drawn.
   */
  workerLost(): void {
    if (this.closed || this.local || this.failure) return;
    try {
      const source = this.source();
      for (let d = 0; d < this.taken + (this.first ? 1 : 0); d++) source.randn(this.size);
      this.local = source;
      Atomics.notify(this.ctrl, MADE);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private source(): NoiseSource {
    const generators = this.plan.seeds.map((s) => new TorchGenerator(s, this.plan.normalKernel));
    return generators.length === 1 ? generators[0]! : batchNoise(generators);
  }

  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the noise stream is closed'));
    if (this.taken >= this.draws) return Promise.resolve();
    const made = Atomics.load(this.ctrl, MADE);
    if (made > this.taken || this.first || this.local) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (this.taken === 0) {
      // Wanted right after the text encoder, which a small one runs faster than an idle worker wakes
      // (or a busy machine schedules it) and draws: drawn here instead of waited for, from the same
      // seeds (the same values; the worker's copy is skipped, its later draws are the ones used).
      this.first = this.source().randn(this.size);
      return Promise.resolve();
    }
    const wait = Atomics.waitAsync(this.ctrl, MADE, made);
    if (!wait.async) return this.ready(); // MADE moved meanwhile
    return Promise.race([wait.value.then(() => this.ready()), this.failed]);
  }

  randn(numel: number): Float32Array {
    if (numel !== this.size) throw new RangeError(`this noise stream draws ${this.size} values at a time, not ${numel}`);
    if (this.taken >= this.draws) throw new RangeError(`all ${this.draws} planned noise draws are taken`);
    let draw = this.first;
    this.first = undefined;
    if (!draw && this.local) draw = this.local.randn(this.size);
    if (!draw) {
      if (this.closed || Atomics.load(this.ctrl, MADE) <= this.taken) throw new Error('the next noise draw is not ready: await ready() first');
      const at = (this.taken % this.slots) * this.size;
      draw = this.ring.slice(at, at + this.size);
    }
    this.taken++;
    Atomics.store(this.ctrl, TAKEN, this.taken);
    // Only a full ring (before this take) has the worker waiting. MADE is read after TAKEN moved, so a
    // worker that fills the ring later sees the new TAKEN. Waking it needlessly would hand it the core
    // the sampler runs on.
    if (Atomics.load(this.ctrl, MADE) - (this.taken - 1) >= this.slots) Atomics.notify(this.ctrl, TAKEN);
    return draw;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.first = undefined;
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.notify(this.ctrl, TAKEN);
    this.fail(new Error('the noise stream is closed'));
  }
}

/** The plan drawn on the calling thread, for callers without workers (same values, no overlap). */
export function localNoiseStream(plan: NoisePlan): NoiseStream {
  checkPlan(plan);
  const generators = plan.seeds.map((s) => new TorchGenerator(s, plan.normalKernel));
  const source = generators.length === 1 ? generators[0]! : batchNoise(generators);
  const size = plan.per * plan.seeds.length;
  let taken = 0;
  return {
    ready: () => Promise.resolve(),
    randn(numel: number) {
      if (numel !== size) throw new RangeError(`this noise stream draws ${size} values at a time, not ${numel}`);
      if (taken >= plan.draws) throw new RangeError(`all ${plan.draws} planned noise draws are taken`);
      taken++;
      return source.randn(numel);
    },
    close() {},
  };
}

/**
 * The worker thread's bootstrap. Compiled (.js), the worker file is imported as it is. Run from source (.ts,
 * as this repo runs under `node --import tsx`), a Node 20 worker does not get the parent's module hooks even
 * with --import inherited, so it registers tsx itself before importing the worker file.
 */
function workerSource(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  const file = new URL(fromSource ? './noise-worker.ts' : './noise-worker.js', import.meta.url).href;
  if (!fromSource) return `import(${JSON.stringify(file)})`;
  const tsx = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(file)}); })`;
}

/** A pool of noise workers, one per render in flight; idle ones do not keep the process alive. */
export class NoiseWorkers {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  /** The job each busy worker serves. */
  private readonly jobs = new Map<Worker, { id: number; stream: SharedDraws }>();
  private nextId = 1;
  private closed = false;

  stream(plan: NoisePlan): NoiseStream {
    checkPlan(plan);
    if (this.closed) throw new Error('the noise workers are closed');
    let worker: Worker;
    try {
      worker = this.idle.pop() ?? this.spawn();
    } catch {
      return localNoiseStream(plan); // no worker to be had (its source would not resolve): drawn here, the same values
    }
    worker.ref(); // a render awaits its draws: keep the process alive meanwhile
    const id = this.nextId++;
    const stream = new SharedDraws(plan);
    this.jobs.set(worker, { id, stream });
    const start: StartJob = {
      kind: 'start',
      id,
      seeds: plan.seeds,
      normalKernel: plan.normalKernel ?? 'avx2',
      per: plan.per,
      draws: plan.draws,
      control: stream.control,
      ring: stream.ringBuffer,
      slots: stream.slots,
    };
    worker.postMessage(start);
    return stream;
  }

  /** `source`: the worker's code (tests give one that fails); by default the noise worker's. */
  constructor(private readonly source: () => string = workerSource) {}

  private spawn(): Worker {
    const worker = new Worker(this.source(), { eval: true });
    this.all.add(worker);
    worker.on('message', (msg: FromWorker) => {
      const job = this.jobs.get(worker);
      if (!job || job.id !== msg.id) return;
      // A failed draw ends this worker's use: the render goes on drawing on its own thread.
      if (msg.kind === 'failed') {
        job.stream.workerLost();
        this.jobs.delete(worker);
        this.all.delete(worker);
        void worker.terminate();
      } else this.release(worker);
    });
    const lost = () => {
      this.all.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      this.jobs.get(worker)?.stream.workerLost();
      this.jobs.delete(worker);
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    return worker;
  }

  private release(worker: Worker): void {
    this.jobs.delete(worker);
    worker.unref();
    if (this.closed || this.idle.length >= KEEP_IDLE) void worker.terminate();
    else this.idle.push(worker);
  }

  /** Stops every worker (renders still drawing fail). */
  async close(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    await Promise.all([...this.all].map((w) => w.terminate()));
  }
}
