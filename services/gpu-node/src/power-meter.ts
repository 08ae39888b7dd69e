/**
 * What a job cost the node (proto JobCost): its share of the device's busy
 * time (power-meter-busy.ts: jobs running at once split it, as they split
 * the energy), and, where `nvidia-smi` is present, the energy the GPU drew
 * meanwhile.
 *
 * One long-running `nvidia-smi --query-gpu=power.draw -lms 200` is read
 * while jobs run (and a little after, so back-to-back jobs reuse it),
 * rather than one nvidia-smi per sample: each start initialises NVML
 * (tens to hundreds of ms of CPU, longer than the interval on some
 * machines), which would both load the node and make the sampling uneven.
 * The readings are integrated per job by power-meter-ledger.ts. Without
 * nvidia-smi, or when its readings fail, a job's energy is "not measured"
 * (energyMeasured false), never an estimate.
 *
 * On Ampere and newer cards power.draw is the driver's one-second average:
 * the night's total is right, a single short job's share is smeared by up
 * to half a second into its neighbours.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '@nightshift/common';
import { EnergyLedger } from './power-meter-ledger.js';
import { BusyTime } from './power-meter-busy.js';
import { gpuLabel, probeGpus, type GpuIdentity } from './power-meter-gpu.js';

/** A job's cost as the node reports it (proto JobCost's fields). */
export interface JobCostReport {
  /** The job's share of the device's busy time (fractional ms): the jobs' gpuMs add up to the time the device was busy. */
  gpuMs: number;
  energyMeasured: boolean;
  /** 0 when not measured. */
  energyJoules: number;
  gpuName: string;
  driverVersion: string;
}

export type MeteredEnergy = Omit<JobCostReport, 'gpuMs'>;

/** One job's metering, from the start of its render to its end. */
export interface MeterSpan {
  /** Ends the span (its busy time is taken now); resolves once a power sample settles its energy (never rejects). */
  end(): Promise<JobCostReport>;
  /** The render failed or was aborted: nothing to report. */
  cancel(): void;
}

/** What the worker meters jobs with (one per device: its spans share the busy time and energy). */
export interface JobMeter {
  begin(): MeterSpan;
}

export interface PowerMeterOptions {
  /** Environment for nvidia-smi (its PATH decides which one runs); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The GPUs, when already probed (probeGpus); probed by start() otherwise. */
  gpu?: GpuIdentity | undefined;
  /** Name reported when nvidia-smi cannot tell (the node's configured NIGHTSHIFT_NODE_GPU). */
  fallbackGpuName?: string;
  intervalMs?: number;
  /** How long the sampler keeps running after the last job, for the next one. */
  lingerMs?: number;
  /** How long an ended job waits for its settling sample before it counts as not measured. */
  settleMs?: number;
  log?: Pick<Logger, 'warn'>;
  now?: () => number;
}

const NOT_MEASURED = { energyMeasured: false, energyJoules: 0 } as const;

/** "[N/A]", "[Not Supported]" and other non-numbers read as NaN: an unreadable sample. */
const parseWatts = (line: string): number => (/^\s*\d+(\.\d+)?\s*$/.test(line) ? Number(line) : NaN);

export class PowerMeter implements JobMeter {
  readonly gpuName: string;
  readonly driverVersion: string;
  private readonly ledger = new EnergyLedger();
  private readonly busy = new BusyTime();
  private readonly waiting = new Map<number, { resolve: (e: Pick<MeteredEnergy, 'energyMeasured' | 'energyJoules'>) => void; timer: NodeJS.Timeout }>();
  private readonly intervalMs: number;
  private readonly now: () => number;
  private sampler: ChildProcess | undefined;
  private linger: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  /** Sampler runs in a row that ended without a single reading; at 3 the meter gives up. */
  private barren = 0;
  private disabled: boolean;
  private stopped = false;

  /** Probes the GPUs (unless given) and returns a meter; one that measures nothing where nvidia-smi is absent. */
  static async start(opts: PowerMeterOptions = {}): Promise<PowerMeter> {
    return new PowerMeter({ ...opts, gpu: opts.gpu ?? (await probeGpus(opts.env ?? process.env)) });
  }

  /** Without opts.gpu it measures no energy (GPU time only): what a worker given no meter uses. */
  constructor(private readonly opts: PowerMeterOptions = {}) {
    this.intervalMs = Math.max(50, opts.intervalMs ?? 200);
    this.now = opts.now ?? (() => performance.now());
    this.disabled = !opts.gpu;
    this.gpuName = opts.gpu ? gpuLabel(opts.gpu.names) : (opts.fallbackGpuName ?? '');
    this.driverVersion = opts.gpu?.driver ?? '';
  }

  /** Whether energy can be measured at all (nvidia-smi found the GPUs and its readings have not failed for good). */
  get measuring(): boolean {
    return !this.disabled;
  }

  begin(): MeterSpan {
    const identity = { gpuName: this.gpuName, driverVersion: this.driverVersion };
    // The job starts now, before the sampler's spawn (which can take milliseconds) is paid for.
    // One instant for both ledgers: time and energy are cut at the same points.
    const start = this.now();
    // Busy time is shared whether or not energy can be measured.
    const busy = this.busy.open(start);
    const energy = this.disabled || this.stopped ? undefined : this.beginEnergy(start);
    let ended = false;
    return {
      end: async () => {
        ended = true;
        const t = this.now();
        const gpuMs = this.busy.close(busy, t);
        return { gpuMs, ...identity, ...(await (energy?.end(t) ?? NOT_MEASURED)) };
      },
      cancel: () => {
        if (ended) return;
        ended = true;
        this.busy.drop(busy, this.now());
        energy?.cancel();
      },
    };
  }

  private beginEnergy(start: number): { end(t: number): Promise<Pick<MeteredEnergy, 'energyMeasured' | 'energyJoules'>>; cancel(): void } {
    const id = this.ledger.open(start);
    clearTimeout(this.linger);
    this.ensureSampler();
    return {
      end: (t) => {
        this.ledger.close(id, t);
        return new Promise((resolve) => {
          // Kept referenced: the worker awaits this before it reports the job.
          const timer = setTimeout(() => this.settle(id), this.opts.settleMs ?? 5 * this.intervalMs + 2_000);
          this.waiting.set(id, { resolve, timer });
          // No sampler now: it died during the job, which therefore cannot be measured; no need to wait.
          if (!this.sampler) this.settle(id);
        });
      },
      cancel: () => {
        this.ledger.drop(id);
        this.idleLater();
      },
    };
  }

  /** Stops the sampler; jobs still waiting count as not measured. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.linger);
    clearTimeout(this.restart);
    this.retire();
    for (const id of [...this.waiting.keys()]) this.settle(id);
  }

  /** Hands a job its result (measured only if a sample settled it) and forgets it. */
  private settle(id: number): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    const r = this.ledger.take(id);
    w.resolve(r?.measured ? { energyMeasured: true, energyJoules: r.joules } : NOT_MEASURED);
    this.idleLater();
  }

  /** Once no job is left, the sampler stops after the linger time. */
  private idleLater(): void {
    if (this.ledger.size > 0 || this.stopped) return;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => this.retire(), this.opts.lingerMs ?? 10_000);
    this.linger.unref();
  }

  /** Stops the sampler on purpose: its exit then changes nothing, and the next job starts a new one at once. */
  private retire(): void {
    const child = this.sampler;
    this.sampler = undefined;
    child?.kill();
    // The next sampler's first reading joins nothing before it.
    this.ledger.gap();
  }

  private reading(watts: number): void {
    for (const id of this.ledger.sample(this.now(), watts)) if (this.waiting.has(id)) this.settle(id);
  }

  private ensureSampler(): void {
    if (this.sampler || this.disabled || this.stopped) return;
    const gpu = this.opts.gpu!;
    const args = ['--query-gpu=power.draw', '--format=csv,noheader,nounits', '-lms', String(this.intervalMs), ...gpu.select];
    const child = spawn('nvidia-smi', args, { env: this.opts.env ?? process.env, stdio: ['ignore', 'pipe', 'ignore'] });
    this.sampler = child;
    let sampled = false;
    let partial = '';
    // One line per GPU per turn; a turn's readings add up to the node's draw.
    let turn: number[] = [];
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!.slice(-256);
      for (const line of lines) {
        if (!line.trim()) continue;
        turn.push(parseWatts(line));
        if (turn.length < gpu.names.length) continue;
        sampled = true;
        this.reading(turn.reduce((a, b) => a + b, 0));
        turn = [];
      }
    });
    child.on('error', (err) => this.opts.log?.warn({ err: err.message }, 'power meter: nvidia-smi did not start'));
    child.on('close', (code, signal) => {
      if (this.sampler !== child) return; // retired on purpose
      this.sampler = undefined;
      // Jobs running across the gap are not measured; those waiting to be settled never will be.
      this.ledger.gap();
      for (const id of [...this.waiting.keys()]) this.settle(id);
      this.barren = sampled ? 0 : this.barren + 1;
      if (this.barren >= 3) {
        this.disabled = true;
        this.opts.log?.warn({ code }, 'power meter: nvidia-smi gives no power readings; energy is not measured from now on');
        return;
      }
      this.opts.log?.warn({ code, signal }, 'power meter: nvidia-smi stopped; restarting it');
      if (this.ledger.size > 0) {
        this.restart = setTimeout(() => this.ensureSampler(), 1_000);
        this.restart.unref();
      }
    });
  }
}
