/**
 * A job's share of the device's busy time (JobCost.gpu_ms), split the way
 * energy is: the energy ledger's splitter, fed a constant power at every
 * job start and end, so each stretch of wall time is shared equally among
 * the jobs running in it (render slots, a params.batch's members). The jobs'
 * gpu_ms then add up to the time the device was busy, not to the sum of
 * their durations, and a job's energy over its gpu_ms is the device's power.
 */
import { EnergyLedger } from './power-meter-ledger.js';

/** A constant 1000 "watts": the ledger's joules are then milliseconds. */
const MS_PER_S = 1_000;

export class BusyTime {
  private readonly ledger = new EnergyLedger();

  /** A job starts at `t` (ms, the meter's clock); the time before goes to the jobs already running. */
  open(t: number): number {
    this.ledger.sample(t, MS_PER_S);
    return this.ledger.open(t);
  }

  /** The job ends at `t`: its share of the busy time since it opened, in ms. */
  close(id: number, t: number): number {
    this.ledger.close(id, t);
    this.ledger.sample(t, MS_PER_S);
    return this.ledger.take(id)?.joules ?? 0;
  }

  /** The job failed or was aborted at `t`: it counts for nothing, and from then on the others share the time without it. */
  drop(id: number, t: number): void {
    this.ledger.sample(t, MS_PER_S);
    this.ledger.drop(id);
  }
}
