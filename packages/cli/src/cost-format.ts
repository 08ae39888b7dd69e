/**
 * `nightshift status SWEEP`'s cost line, from GET /api/sweeps/:id's `cost`
 * (the coordinator's sweep-cost.ts): GPU hours always; kWh only where a node
 * measured it, else "not measured" (never an estimate); cost where there is
 * both a measurement and a price.
 */

export interface CostJson {
  renders: number;
  gpuHours: number;
  measuredRenders: number;
  kWh: number | null;
  cost: number | null;
  energy: string;
  pricePerKwh: number | null;
}

/** Up to `digits` significant digits, without a trailing exponent for everyday sizes. */
const num = (x: number, digits = 3) => String(Number(x.toPrecision(digits)));

/** One line, e.g. "0.0123 GPU-h, 0.00307 kWh (measured on 6 of 12 renders), cost 0.00123 at 0.4/kWh". */
export function costText(c: CostJson): string {
  const parts = [`${num(c.gpuHours)} GPU-h`];
  if (c.kWh === null) parts.push('energy not measured');
  else parts.push(`${num(c.kWh)} kWh${c.energy === 'partial' ? ` (measured on ${c.measuredRenders} of ${c.renders} renders)` : ''}`);
  if (c.cost !== null) parts.push(`cost ${num(c.cost)} at ${num(c.pricePerKwh ?? 0, 6)}/kWh`);
  else if (c.kWh !== null) parts.push('cost: no price set (NIGHTSHIFT_ENERGY_PRICE)');
  return parts.join(', ');
}
