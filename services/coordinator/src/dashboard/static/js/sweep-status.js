// @ts-check
// How a sweep's progress reads, on the sweeps list and on the sweep's own page.
import { fmtDuration } from './format.js';

/**
 * @typedef {import('./api-types.js').Sweep} Sweep
 * @typedef {import('./api-types.js').SweepCounts} SweepCounts
 * @typedef {import('./api.js').SweepAction} SweepAction
 */

/** Sweep and job states that never change again. @type {ReadonlySet<string>} */
export const FINAL = new Set(['done', 'failed', 'cancelled']);

/** Whether a button's data-action names a sweep action. @returns {action is SweepAction} */
export const isSweepAction = (/** @type {string | undefined} */ action) => action === 'pause' || action === 'resume' || action === 'cancel';

export const ACTION_WORDS = { pause: 'paused', resume: 'resumed', cancel: 'cancelled', priority: 'reprioritised' };

/** @param {Partial<SweepCounts>} c */
const finishedOf = (c) => (c.done || 0) + (c.skipped || 0) + (c.failed || 0) + (c.cancelled || 0);

/** "12 / 24 · 10 done · 2 rendering · …" @param {Sweep} s */
export function countsText(s) {
  /** @type {Partial<SweepCounts>} */
  const c = s.counts || {};
  const parts = [`${finishedOf(c).toLocaleString()} / ${s.total.toLocaleString()}`];
  if (c.done) parts.push(`${c.done.toLocaleString()} done`);
  if (c.running) parts.push(`${c.running} rendering`);
  if (c.queued) parts.push(`${c.queued.toLocaleString()} queued`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.skipped) parts.push(`${c.skipped} already rendered`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  return parts.join(' · ');
}

/** Time left, or why there is no estimate. @param {Sweep} s */
export function etaText(s) {
  if (s.status === 'done') return 'finished';
  if (FINAL.has(s.status)) return '—';
  if (s.status === 'paused') return 'paused';
  if (typeof s.etaSeconds === 'number') return `${fmtDuration(s.etaSeconds)}${s.rate ? ` (${s.rate.toFixed(1)} img/s)` : ''}`;
  return s.status === 'queued' ? 'waiting for a node' : 'estimating…';
}

/**
 * Fills a progress bar (a role=progressbar with a <span> inside).
 * @param {Element} bar
 * @param {Sweep} s
 */
export function setBar(bar, s) {
  const pct = s.total ? (100 * finishedOf(s.counts || {})) / s.total : 0;
  const fill = bar.querySelector('span');
  if (fill) fill.style.width = `${pct.toFixed(1)}%`;
  bar.setAttribute('aria-valuenow', pct.toFixed(0));
  bar.setAttribute('aria-valuetext', `${pct.toFixed(0)}% — ${countsText(s)}`);
}
