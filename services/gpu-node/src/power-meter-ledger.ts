/**
 * Per-job energy from a stream of power samples (power-meter.ts feeds it).
 * Power between two samples is taken as the straight line joining them
 * (trapezoids), and each stretch is shared equally among the jobs running
 * in it, so two render slots on one GPU do not both count its whole draw.
 * A job is settled by the first sample at or after its end. Before the
 * first sample after a (re)start the first reading is held back to the
 * job's start (under one sampling interval). A job that saw an unreadable
 * sample or a gap in the samples is not measured: never a guess.
 *
 * Times are milliseconds on one monotonic clock; energy is in joules.
 */

export interface SpanResult {
  /** A sample at or after the job's end has arrived (or the span was broken). */
  done: boolean;
  measured: boolean;
  joules: number;
}

interface Span {
  start: number;
  end: number | undefined;
  joules: number;
  /** Saw an unreadable sample or a gap: not measured. */
  broken: boolean;
  done: boolean;
}

interface Sample {
  t: number;
  /** Watts; NaN when the reading was unreadable ("[N/A]"). */
  w: number;
}

export class EnergyLedger {
  private readonly spans = new Map<number, Span>();
  private last: Sample | undefined;
  private nextId = 1;

  /** Spans not yet taken (running, or ended and waiting for their settling sample). */
  get size(): number {
    return this.spans.size;
  }

  open(t: number): number {
    const id = this.nextId++;
    this.spans.set(id, { start: t, end: undefined, joules: 0, broken: false, done: false });
    return id;
  }

  close(id: number, t: number): void {
    const s = this.spans.get(id);
    if (s && s.end === undefined) s.end = Math.max(t, s.start);
  }

  /** Forgets a span (a failed or aborted render): its share of later stretches goes to the others. */
  drop(id: number): void {
    this.spans.delete(id);
  }

  /** The result so far; undefined for an unknown span. */
  result(id: number): SpanResult | undefined {
    const s = this.spans.get(id);
    return s && { done: s.done, measured: s.done && !s.broken, joules: s.broken ? 0 : s.joules };
  }

  /** The result, and the span forgotten. */
  take(id: number): SpanResult | undefined {
    const r = this.result(id);
    this.spans.delete(id);
    return r;
  }

  /**
   * The samples stopped (the sampler died or was restarted): running jobs
   * cannot be measured across the gap, and the next sample joins nothing before it.
   */
  gap(): void {
    for (const s of this.spans.values()) if (!s.done) s.broken = true;
    this.last = undefined;
  }

  /** A power reading at time `t`; returns the spans it settled (their end is at or before `t`). */
  sample(t: number, watts: number): number[] {
    const w = Number.isFinite(watts) && watts >= 0 ? watts : NaN;
    const prev = this.last;
    if (prev && t <= prev.t) {
      // Same instant (a clock that did not move): no stretch to add; the newer reading is kept.
      this.last = { t: prev.t, w };
    } else {
      // No sample before this one: hold this reading back to the start of the jobs.
      const a = prev?.t ?? -Infinity;
      const wa = prev?.w ?? w;
      const live = [...this.spans.values()].filter((s) => !s.done && s.start < t && (s.end === undefined || s.end > a));
      if (Number.isNaN(w) || Number.isNaN(wa)) {
        for (const s of live) s.broken = true;
      } else {
        this.share(live, a, wa, t, w);
      }
      this.last = { t, w };
    }
    const settled: number[] = [];
    for (const [id, s] of this.spans) {
      if (!s.done && s.end !== undefined && s.end <= t) {
        s.done = true;
        settled.push(id);
      }
    }
    return settled;
  }

  /** Splits the stretch [a, b] where jobs start or end, and shares each piece's energy among the jobs in it. */
  private share(spans: Span[], a: number, wa: number, b: number, wb: number): void {
    const lo = (s: Span) => Math.max(a, s.start);
    const hi = (s: Span) => Math.min(b, s.end ?? b);
    const cuts = [...new Set(spans.flatMap((s) => [lo(s), hi(s)]))].sort((x, y) => x - y);
    const power = (x: number) => (a === -Infinity ? wb : wa + ((wb - wa) * (x - a)) / (b - a));
    for (let i = 1; i < cuts.length; i++) {
      const x = cuts[i - 1]!;
      const y = cuts[i]!;
      const inside = spans.filter((s) => lo(s) <= x && hi(s) >= y);
      if (!inside.length) continue;
      const joules = ((power(x) + power(y)) / 2) * ((y - x) / 1000);
      for (const s of inside) s.joules += joules / inside.length;
    }
  }
}
