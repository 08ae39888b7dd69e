/**
 * A big sweep stored in parts, on either engine (sqlite-sweep-parts.ts,
 * postgres-sweep-parts.ts): one transaction a part, so nodes lease the first
 * part while the rest are made, and no transaction holds the sweep's whole
 * insert (a 100,000-job sweep is most of a second of it: 1,000 nodes waited
 * that long for their first lease). The first part stores the sweep counting
 * every job it will have as queued, so nothing settles it while parts are
 * missing and a quota sees its whole size. A sweep whose parts stop short is
 * cut to the jobs it has and cancelled; each engine says how one whose
 * storing stopped with its process is found and ended later.
 */
import type { NewJob } from './engine.js';

/** Jobs a part holds: about 20 ms of inserts, and more than 1,000 one-slot nodes lease at their first fill. */
export const SWEEP_PART_JOBS = 2_048;

/** The longest the second part waits for the nodes' fills after the first: a slow node line must not hold the submit. */
export const FIRST_FILLS_WAIT_MS = 1_000;

/** One engine's transactions of a sweep stored in parts. */
export interface PartWriter {
  /** The sweep, counting `expected` jobs, and its first `n` of `made` (exactly: fewer throws, and nothing is stored). */
  begin(made: Iterator<NewJob>, n: number): Promise<void>;
  /** The next part: up to `n` of `made`; how many it stored. */
  part(made: Iterator<NewJob>, n: number): Promise<number>;
  /** Every job is stored: the sweep is whole. */
  finish(): Promise<void>;
  /** Cuts the sweep to the `stored` jobs it has and cancels it; returns why it could not, if it could not. */
  endShort(stored: number): Promise<unknown>;
}

export interface PartSizes {
  /** Jobs in each part after the first (SWEEP_PART_JOBS unless told). */
  laterParts?: number;
  /** How long the second part waits at most for the first part's fills (FIRST_FILLS_WAIT_MS unless told). */
  firstFillsWaitMs?: number | undefined;
}

/**
 * Stores the `expected` jobs of `made` as sweep `id` through `writer`, a
 * part at a time (the first of SWEEP_PART_JOBS); resolves once all are
 * stored. `partStored` hears of each part committed (the hub offers its
 * jobs to the nodes).
 */
export async function storeInParts(
  id: string,
  expected: number,
  made: Iterator<NewJob>,
  writer: PartWriter,
  partStored: (() => void | Promise<void>) | undefined,
  sizes: PartSizes = {},
): Promise<void> {
  const laterParts = sizes.laterParts ?? SWEEP_PART_JOBS;
  await writer.begin(made, Math.min(SWEEP_PART_JOBS, expected));
  let stored = Math.min(SWEEP_PART_JOBS, expected);
  try {
    for (let first = true; ; first = false) {
      // The first part's fills run before the next part is stored: they share the loop otherwise, and every
      // node's first lease came a part's worth (20 ms) later per part (a 100,000-job sweep: 300 ms, not 120).
      const told = tell(partStored);
      if (first) await within(told, sizes.firstFillsWaitMs ?? FIRST_FILLS_WAIT_MS);
      else void told;
      if (stored >= expected) break;
      await new Promise((resolve) => setImmediate(resolve));
      const part = Math.min(laterParts, expected - stored);
      const n = await writer.part(made, part);
      stored += n;
      if (n < part) throw new Error(`the expansion made ${stored} jobs of the ${expected} it counted`);
    }
    if (!made.next().done) throw new Error(`the expansion made more jobs than the ${expected} it counted`);
    await writer.finish();
  } catch (err) {
    const unended = await writer.endShort(stored);
    const ending = unended ? `is to be cancelled shortly (cancelling it now failed: ${String(unended)})` : 'is cancelled (finished images are kept)';
    throw new Error(`storing sweep ${id} stopped after ${stored} of its ${expected} jobs, so it ${ending}: ${String(err)}`, { cause: err });
  }
}

/** Up to `n` more of `made`, leaving the rest in it (a for-of over `made` itself would close it). */
export function* take<T>(made: Iterator<T>, n: number): Generator<T> {
  for (let i = 0; i < n; i++) {
    const next = made.next();
    if (next.done) return;
    yield next.value;
  }
}

/** `work`, or `ms` if that comes first. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tells a listener that a part is stored; its failure is not the sweep's (the hub's next tick offers the work anyway). */
async function tell(listener: (() => void | Promise<void>) | undefined): Promise<void> {
  try {
    await listener?.();
  } catch {
    // Nothing to undo: the part is stored, and the hub's tick fills the nodes.
  }
}
