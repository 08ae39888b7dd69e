/** What the conformance suites share: jobs, reports, exact counters, the outbox drained. */
import assert from 'node:assert/strict';
import { imageKey, thumbKey } from '@nightshift/common';
import { jobId } from '../store/rows.js';
import type { NodeCaps } from '../placement.js';
import type { JobRow, NewJob, StoreEngine, SweepCounts } from './engine.js';

export const LEASE = 30_000;
export const PROC: NodeCaps = { backends: ['procedural'], models: [], vramMb: 8_192 };

export function newJobs(tag: string, n: number, extra: Partial<NewJob> = {}): NewJob[] {
  const params = { steps: 4 };
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    renderKey: `rk-${tag}-${i}`,
    prompt: `a ${tag} ${i}`,
    seed: 1000 + i,
    params,
    axes: { i },
    backend: 'procedural',
    model: 'm1',
    minVramMb: 0,
    ...extra,
  }));
}

export function report(job: Pick<JobRow, 'render_key'>, skipped = false) {
  return { imageKey: imageKey(job.render_key), thumbKey: thumbKey(job.render_key), renderMs: 1_234, skipped };
}

/** A sweep's counters equal a count of its jobs' states, read one by one. */
export async function assertCountsExact(engine: StoreEngine, sweepId: string, total: number, expect?: Partial<SweepCounts>): Promise<SweepCounts> {
  const truth: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
  for (let i = 0; i < total; i++) {
    const job = (await engine.getJob(jobId(sweepId, i)))!;
    truth[job.state === 'leased' ? 'running' : job.state]++;
  }
  const counts = await engine.counts(sweepId);
  assert.deepEqual(counts, truth, 'counters equal the jobs');
  if (expect) assert.deepEqual(counts, { ...{ queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 }, ...expect });
  return counts;
}

export async function drainEvents(engine: StoreEngine): Promise<{ subject: string; msg_id: string; payload: unknown }[]> {
  const out: { subject: string; msg_id: string; payload: unknown }[] = [];
  for (;;) {
    const batch = await engine.claimEvents(50, 60_000);
    if (!batch.length) return out;
    await engine.markPublished(batch.map((e) => e.id));
    out.push(...batch.map((e) => ({ subject: e.subject, msg_id: e.msg_id, payload: JSON.parse(e.payload) as unknown })));
  }
}

