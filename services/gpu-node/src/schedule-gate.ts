/**
 * Decides whether the node takes work now: a pause by hand first, then its
 * schedule, then (idleOnly) whether another program uses the GPU. Polled
 * every few seconds; each change is handed to `onChange` (the node then
 * leaves or rejoins the farm).
 */
import type { GpuProbe } from './gpu-probe.js';
import { localLabel, type Schedule } from './schedule.js';

export type SleepReason = 'paused' | 'schedule' | 'gpu-busy';

export type GateState =
  | { accepting: true }
  /** `untilMs` 0 and `untilLocal` '' when it cannot be known (a busy GPU, a pause by hand). */
  | { accepting: false; reason: SleepReason; untilMs: number; untilLocal: string; detail: string };

export interface GateOptions {
  schedule?: Schedule | undefined;
  /** idleOnly: the foreign processes on the GPU. */
  probe?: GpuProbe | undefined;
  /** Epoch ms now; tests move it. */
  clock?: () => number;
  pollMs?: number;
  onChange: (state: GateState) => void;
}

export class ScheduleGate {
  private current: GateState = { accepting: true };
  private paused = false;
  private busy: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private readonly clock: () => number;

  constructor(private readonly opts: GateOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  get state(): GateState {
    return this.current;
  }

  /** Looks once (so a node never joins before it knows), then every pollMs. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    this.update();
  }

  /** Probes the GPU (one probe at a time) and re-evaluates. */
  poll(): Promise<void> {
    this.polling ??= this.pollNow().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollNow(): Promise<void> {
    try {
      if (this.opts.probe) this.busy = (await this.opts.probe()).map((p) => `${p.name} (pid ${p.pid})`);
    } catch {
      // A probe that failed tells nothing new: the last answer stands.
    }
    this.update();
  }

  private evaluate(): GateState {
    if (this.paused) return { accepting: false, reason: 'paused', untilMs: 0, untilLocal: '', detail: 'paused by hand' };
    const schedule = this.opts.schedule;
    const now = schedule ? new Date(this.clock()) : undefined;
    if (schedule && now && !schedule.isOpen(now)) {
      const next = schedule.nextOpening(now);
      return { accepting: false, reason: 'schedule', untilMs: next?.getTime() ?? 0, untilLocal: next ? localLabel(next, now) : '', detail: 'outside the schedule' };
    }
    if (this.busy.length) return { accepting: false, reason: 'gpu-busy', untilMs: 0, untilLocal: '', detail: `GPU in use by ${this.busy.join(', ')}` };
    return { accepting: true };
  }

  private update(): void {
    const next = this.evaluate();
    if (sameState(next, this.current)) return;
    this.current = next;
    this.opts.onChange(next);
  }
}

function sameState(a: GateState, b: GateState): boolean {
  if (a.accepting || b.accepting) return a.accepting === b.accepting;
  return a.reason === b.reason && a.untilMs === b.untilMs && a.detail === b.detail;
}
