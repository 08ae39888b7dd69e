// @ts-check
// What a sweep cost, on its page: GPU hours, kWh and cost, in total and per
// node. Energy the nodes did not measure reads "not measured", never a guess.
import { $, h } from './dom.js';

/**
 * @typedef {import('./api-types.js').SweepCost} SweepCost
 * @typedef {import('./api-types.js').CostFigures} CostFigures
 */

/** 3 significant digits, grouped: 1,234 · 12.3 · 0.0123. @param {number} x */
const num = (x) => (x === 0 ? '0' : Number(x.toPrecision(3)).toLocaleString(undefined, { maximumFractionDigits: 6 }));

/**
 * "0.42 GPU-h · 0.31 kWh · cost 0.09" (cost only with a price set).
 * @param {CostFigures} c
 * @param {number | null} price
 */
export function figuresText(c, price) {
  const parts = [`${num(c.gpuHours)} GPU-h`];
  if (c.kWh === null) parts.push('energy not measured');
  else {
    parts.push(`${num(c.kWh)} kWh${c.measuredRenders < c.renders ? ` (measured on ${c.measuredRenders.toLocaleString()} of ${c.renders.toLocaleString()} renders)` : ''}`);
    if (c.cost !== null && price !== null) parts.push(`cost ${num(c.cost)} at ${num(price)}/kWh`);
  }
  return parts.join(' · ');
}

/**
 * Fills #sweep-cost (the total) and #sweep-cost-nodes (one line per node); hidden until a render reported its cost.
 * @param {SweepCost | undefined} cost
 */
export function renderCost(cost) {
  const total = $('#sweep-cost');
  const nodes = $('#sweep-cost-nodes');
  total.hidden = nodes.hidden = !cost || cost.renders === 0;
  if (!cost || total.hidden) return;
  total.textContent = `Cost so far: ${figuresText(cost, cost.pricePerKwh)}`;
  nodes.replaceChildren(
    ...cost.nodes.map((n) =>
      h('li', {}, h('strong', { text: n.name }), n.gpuName ? ` (${n.gpuName}${n.driverVersion ? `, driver ${n.driverVersion}` : ''})` : '', `: ${n.renders.toLocaleString()} renders · ${figuresText(n, cost.pricePerKwh)}`),
    ),
  );
}
