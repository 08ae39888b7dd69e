// Messages between NoiseWorkers (main thread) and noise-worker.ts: one job
// at a time per worker, its messages tagged with the job's id so a late
// message of a finished job is ignored.
import type { NormalKernel } from './torch-generator.js';

export interface StartJob {
  kind: 'start';
  id: number;
  /** One generator per image, drawn in this order (batchNoise's layout). */
  seeds: readonly (number | bigint)[];
  normalKernel: NormalKernel;
  /** Values per image and draw. */
  per: number;
  /** Draws in all; the worker stops after the last. */
  draws: number;
  /** Draws the worker may make before the first is taken; each one taken allows one more. */
  ahead: number;
}

export type ToWorker = StartJob | { kind: 'more'; id: number } | { kind: 'stop'; id: number };

export type FromWorker =
  | { kind: 'draw'; id: number; data: Float32Array }
  /** The job is over (every draw made, stopped, or failed): the worker takes the next. */
  | { kind: 'done'; id: number }
  | { kind: 'failed'; id: number; message: string };
