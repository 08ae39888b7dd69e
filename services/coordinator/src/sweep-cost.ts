/**
 * What a sweep cost, as GET /api/sweeps/:id and the sweep page show it: GPU
 * hours, kWh and cost (kWh × NIGHTSHIFT_ENERGY_PRICE, a number in no
 * particular currency), per node and in total. Energy counts only renders
 * whose node measured it: with none, kWh and cost are null ("not
 * measured"); with some, `measuredRenders` of `renders` says how much of
 * the night the figure covers. Never extrapolated.
 */
import type { CostSumRow } from './store/costs.js';

export interface CostFigures {
  /** Renders reported with a cost (a job rendered on two nodes counts twice; skipped jobs not at all). */
  renders: number;
  gpuHours: number;
  /** Renders whose energy was measured. */
  measuredRenders: number;
  /** Measured energy; null when no render's was. */
  kWh: number | null;
  /** kWh × the price; null when nothing was measured or no price is set. */
  cost: number | null;
}

export interface NodeCostView extends CostFigures {
  nodeId: string;
  name: string;
  gpuName: string;
  driverVersion: string;
}

export interface SweepCostView extends CostFigures {
  /** "measured": every render; "partial": some (see measuredRenders); "not measured": none. */
  energy: 'measured' | 'partial' | 'not measured';
  /** NIGHTSHIFT_ENERGY_PRICE per kWh; null when unset. */
  pricePerKwh: number | null;
  nodes: NodeCostView[];
}

const J_PER_KWH = 3_600_000;
const MS_PER_HOUR = 3_600_000;
/** Six significant digits: a test sweep's few joules stay visible, a farm's megawatt-hours carry no noise digits. */
const round = (x: number) => Number(x.toPrecision(6));

function figures(renders: number, gpuMs: number, measured: number, joules: number, price: number | null): CostFigures {
  const kWh = measured > 0 ? round(joules / J_PER_KWH) : null;
  return { renders, gpuHours: round(gpuMs / MS_PER_HOUR), measuredRenders: measured, kWh, cost: kWh !== null && price !== null ? round((joules / J_PER_KWH) * price) : null };
}

export function sweepCostView(rows: readonly CostSumRow[], price: number | undefined): SweepCostView {
  const p = price ?? null;
  const sum = (f: (r: CostSumRow) => number) => rows.reduce((a, r) => a + f(r), 0);
  const total = figures(sum((r) => r.renders), sum((r) => r.gpu_ms), sum((r) => r.measured_renders), sum((r) => r.energy_joules), p);
  const energy = total.measuredRenders === 0 ? 'not measured' : total.measuredRenders < total.renders ? 'partial' : 'measured';
  return {
    ...total,
    energy,
    pricePerKwh: p,
    nodes: rows.map((r) => ({
      nodeId: r.node_id,
      name: r.name ?? r.node_id,
      gpuName: r.gpu_name,
      driverVersion: r.driver_version,
      ...figures(r.renders, r.gpu_ms, r.measured_renders, r.energy_joules, p),
    })),
  };
}
