// How NoiseWorkers (main thread) and noise-worker.ts share a render's noise:
// one 'start' message per render, then only shared memory. The worker writes
// draw d into slot d mod slots of `ring` and publishes it by raising MADE; the
// main thread copies a slot out and raises TAKEN, which frees the slot. STOP
// ends the job early. At the end the worker posts 'done' (or 'failed') and
// takes the next job.
// Nothing wakes the other thread per draw: the ring holds a whole render's
// draws (up to RING_BYTES), so the worker draws them all at once, while the
// text encoder and the first UNet steps run, and never waits. Waking a
// waiting worker at every draw cost the main thread as much as drawing the
// noise itself on a busy machine (the woken worker took its core), and a
// postMessage per draw tens of µs each way.
import type { NormalKernel } from './torch-generator.js';

/** Int32 indices into `control`. */
export const MADE = 0;
export const TAKEN = 1;
export const STOP = 2;
export const CONTROL_INTS = 3;
/** The most a job's ring holds; bigger renders (many steps of a large batch) draw at most this far ahead. */
export const RING_BYTES = 16 * 1024 * 1024;

/** Slots of a job's ring: every draw where they fit, else as many as fit (at least 2: the next step's and one spare). */
export function ringSlots(draws: number, valuesPerDraw: number): number {
  return Math.min(draws, Math.max(2, Math.floor(RING_BYTES / (4 * valuesPerDraw))));
}

export interface StartJob {
  kind: 'start';
  id: number;
  /** One generator per image, drawn in this order (batchNoise's layout). */
  seeds: readonly (number | bigint)[];
  normalKernel: NormalKernel;
  /** Values per image and draw. */
  per: number;
  /** Draws in all. */
  draws: number;
  /** Int32Array(CONTROL_INTS) over a SharedArrayBuffer. */
  control: SharedArrayBuffer;
  /** Float32Array(slots · seeds · per) over a SharedArrayBuffer. */
  ring: SharedArrayBuffer;
  slots: number;
}

export type ToWorker = StartJob;

export type FromWorker =
  /** The job is over (every draw made, or stopped): the worker takes the next. */
  | { kind: 'done'; id: number }
  | { kind: 'failed'; id: number; message: string };
