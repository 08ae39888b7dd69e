/** Plain-text output: aligned tables, durations, sweep lines. */

export interface SweepView {
  id: string;
  name: string;
  kind?: string;
  status: string;
  priority: number;
  backend: string;
  total: number;
  counts: { queued: number; running: number; done: number; failed: number; skipped: number; cancelled?: number };
  rate?: number | null;
  etaSeconds?: number | null;
  createdAt: string;
  finishedAt: string | null;
  explain?: string[];
  failedJobs?: { jobId: string; prompt: string; seed: number; error: string | null }[];
}

export const FINAL = new Set(['done', 'failed', 'cancelled']);

export function finished(s: Pick<SweepView, 'counts'>): number {
  const c = s.counts;
  return c.done + c.skipped + c.failed + (c.cancelled ?? 0);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  return `${duration((now - Date.parse(iso)) / 1000)} ago`;
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function countsText(s: SweepView): string {
  const c = s.counts;
  const parts = [`${c.done} done`];
  if (c.running) parts.push(`${c.running} running`);
  if (c.queued) parts.push(`${c.queued} queued`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.skipped) parts.push(`${c.skipped} already rendered`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  return parts.join(', ');
}

export function sweepLine(s: SweepView): string {
  const pct = s.total ? Math.floor((100 * finished(s)) / s.total) : 100;
  const eta = FINAL.has(s.status) ? '' : s.etaSeconds !== null && s.etaSeconds !== undefined ? `, ETA ${duration(s.etaSeconds)}` : '';
  return `${s.id} ${s.status}: ${finished(s)}/${s.total} (${pct}%) — ${countsText(s)}${eta}`;
}

/** A finished sweep: its line, then one line per failed job. */
export function finalReport(s: SweepView): string {
  return [sweepLine(s), ...(s.failedJobs ?? []).map((f) => `  failed: ${f.prompt} (seed ${f.seed}): ${f.error ?? 'no error recorded'}`)].join('\n');
}
