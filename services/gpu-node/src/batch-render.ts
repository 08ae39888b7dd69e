/**
 * params.batch on the node: jobs of one prompt and params that differ only
 * in their seed ("siblings") render together in one backend call when the
 * backend can (the onnx backend's renderBatch: one UNet batch), as many as
 * the job's batch and the node's VRAM allow (batchForVram). Every job stays
 * its own job: each is checked against storage, reported, uploaded and
 * failed on its own; only the render call is shared. The worker takes a
 * job's waiting siblings from its queue (takeSiblings) and gives each a
 * BatchMember: the call starts once every member has asked to render or
 * withdrawn (its image was already stored, or it failed before rendering).
 *
 * Cost: the shared call is metered here, not per member: one meter span per
 * member over the call, so the meter shares the call's busy time and energy
 * equally among the n (and with any job another render slot runs meanwhile,
 * power-meter-busy.ts); a batch counts its GPU time once. The time members
 * wait for each other is not metered.
 */
import type { JobAssignment } from '@nightshift/proto';
import { batchForVram } from '@nightshift/sweep';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backends/backend.js';
import { PowerMeter, type JobCostReport, type JobMeter } from './power-meter.js';

/** A backend that renders sibling jobs in one call; result k must equal render() of job k alone. */
export interface BatchingBackend extends Backend {
  renderBatch(reqs: readonly RenderRequest[], onProgress: (index: number, p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult[]>;
}

export const canBatch = (b: Backend | undefined): b is BatchingBackend => typeof (b as Partial<BatchingBackend> | undefined)?.renderBatch === 'function';

export type RenderFn = Backend['render'];

/** What siblings share: everything but the seed (and job id). Upscales and img-sourced jobs never batch. */
function siblingKey(job: JobAssignment): string {
  return JSON.stringify([job.backend, job.kind, job.model, job.modelHash, job.prompt, job.paramsJson, job.sourceKey]);
}

/** How many jobs may render with this one: its params.batch, bounded by what the node's VRAM holds; 1 when the backend cannot batch. */
export function batchLimit(job: JobAssignment, backend: Backend | undefined, vramMb: number | undefined): number {
  if (!canBatch(backend) || job.kind === 'upscale') return 1;
  let params: { batch?: unknown; width?: unknown; height?: unknown };
  try {
    params = JSON.parse(job.paramsJson) as typeof params;
  } catch {
    return 1; // the render reports the bad params
  }
  const { batch, width, height } = params;
  if (typeof batch !== 'number' || !Number.isInteger(batch) || batch <= 1) return 1;
  if (vramMb === undefined || typeof width !== 'number' || typeof height !== 'number') return batch;
  return batchForVram(width, height, batch, vramMb);
}

/** Removes from `queue` up to limit − 1 siblings of `first`'s job (queue order) and returns them. */
export function takeSiblings<T extends { job: JobAssignment }>(queue: T[], first: T, limit: number): T[] {
  if (limit <= 1) return [];
  const key = siblingKey(first.job);
  const taken: T[] = [];
  for (let i = 0; i < queue.length && taken.length < limit - 1; ) {
    if (siblingKey(queue[i]!.job) === key) taken.push(...queue.splice(i, 1));
    else i++;
  }
  return taken;
}

export interface BatchMember {
  /** Renders this job as part of the batch (same signature as Backend.render). */
  render: RenderFn;
  /** This job will not render (stored already, failed first): the batch stops waiting for it. Idempotent; a no-op once it rendered. */
  withdraw(): void;
  /** Once render resolved: this job's share of the call it rendered in (undefined before). */
  share(): BatchShare | undefined;
}

/** A member's share of its call, as the meter split it: GPU time (fractional ms) and energy. */
export interface BatchShare {
  cost: Promise<JobCostReport>;
  /** How many jobs the call it rendered in held (1: it rendered alone after all). */
  jobs: number;
}

interface Joined {
  req: RenderRequest;
  onProgress: (p: RenderProgress) => void;
  signal: AbortSignal;
  resolve: (r: RenderResult, share: BatchShare) => void;
  reject: (err: unknown) => void;
}

const abortError = () => new DOMException('This operation was aborted', 'AbortError');

/**
 * One shared render call for `size` jobs. The call's own signal aborts only
 * when every member's has; a member aborted alone gets its AbortError at
 * once and the others go on. An out-of-memory failure of a batch renders its
 * members one at a time instead (a batch too big for the card says nothing
 * about one image).
 */
export function batchMembers(backend: BatchingBackend, size: number, meter: JobMeter = new PowerMeter()): BatchMember[] {
  const joined: Joined[] = [];
  let settled = 0;
  const settle = () => {
    if (++settled === size) void run(backend, joined, meter);
  };
  return Array.from({ length: size }, () => {
    let done = false;
    let share: BatchShare | undefined;
    return {
      render: (req, onProgress, signal) =>
        new Promise<RenderResult>((resolve, reject) => {
          if (done) throw new Error('a batch member renders once');
          done = true;
          const resolved = (r: RenderResult, s: BatchShare) => {
            share = s;
            resolve(r);
          };
          joined.push({ req, onProgress, signal, resolve: resolved, reject });
          settle();
        }),
      share: () => share,
      withdraw: () => {
        if (done) return;
        done = true;
        settle();
      },
    };
  });
}

/** Meters one backend call of `n` jobs (n spans: the meter splits the call n ways); a failed call reports nothing (as a failed render alone does not). */
async function meteredCall<T>(meter: JobMeter, n: number, call: () => Promise<T>): Promise<{ value: T; shares: BatchShare[] }> {
  const spans = Array.from({ length: n }, () => meter.begin());
  let value: T;
  try {
    value = await call();
  } catch (err) {
    for (const s of spans) s.cancel();
    throw err;
  }
  return { value, shares: spans.map((s) => ({ cost: s.end(), jobs: n })) };
}

async function run(backend: BatchingBackend, joined: Joined[], meter: JobMeter): Promise<void> {
  // A member aborted while the batch gathered is left out of it.
  for (const m of joined) if (m.signal.aborted) m.reject(abortError());
  const members = joined.filter((m) => !m.signal.aborted);
  if (members.length === 0) return;
  const all = new AbortController();
  for (const m of members) {
    const onAbort = () => {
      m.reject(abortError());
      if (members.every((x) => x.signal.aborted)) all.abort();
    };
    m.signal.addEventListener('abort', onAbort, { once: true });
  }
  const progress = (index: number, p: RenderProgress) => {
    const m = members[index];
    if (m && !m.signal.aborted) m.onProgress(p);
  };
  try {
    const { value: results, shares } = await meteredCall(meter, members.length, async () =>
      members.length === 1 ? [await backend.render(members[0]!.req, (p) => progress(0, p), all.signal)] : await backend.renderBatch(members.map((m) => m.req), progress, all.signal),
    );
    members.forEach((m, k) => m.resolve(results[k]!, shares[k]!));
  } catch (err) {
    if (!(err instanceof RenderFailure && err.outOfMemory && members.length > 1)) {
      for (const m of members) m.reject(err);
      return;
    }
    for (const m of members) {
      if (m.signal.aborted) continue;
      try {
        const { value, shares } = await meteredCall(meter, 1, () => backend.render(m.req, m.onProgress, m.signal));
        m.resolve(value, shares[0]!);
      } catch (e) {
        m.reject(e);
      }
    }
  }
}
