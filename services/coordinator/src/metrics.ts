/**
 * The coordinator's Prometheus metrics. Gauges are computed at scrape time
 * from the store engine (`gallery.farmCounts`, so on PostgreSQL every replica
 * reports the whole farm) and the hub (job counts from the per-sweep counters, never the
 * jobs themselves: a scrape costs the same at a million queued); counters and
 * the render-time histogram are fed by the hub's observer hooks as things happen.
 * What the renders cost (GPU time, measured energy, its price) are counters
 * read from the per-node sums (store/costs.ts) at scrape time, so they survive
 * a restart; per node only, as a label per sweep would grow without end.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry, RENDER_SECONDS_BUCKETS } from '@nightshift/common';
import type { HubObserver } from './node-hub.js';
import type { CostEngine, FarmCounts, GalleryEngine, NodeCostSumRow } from './store-engine/engine.js';

export const JOB_STATES = ['queued', 'leased', 'done', 'skipped', 'failed', 'cancelled'] as const;

export interface CoordinatorMetrics {
  registry: Registry;
  observer: HubObserver;
}

export interface MetricsEngine {
  gallery: Pick<GalleryEngine, 'farmCounts'>;
  costs: Pick<CostEngine, 'nodeSums'>;
}

/** One read shared by every metric collected in the same scrape (prom-client collects them all at once). */
function perScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= read().finally(() => {
      pending = undefined;
    }));
}

/** `energyPrice`: NIGHTSHIFT_ENERGY_PRICE per kWh; without it there is no cost counter. */
export function createCoordinatorMetrics(engine: MetricsEngine, onlineNodes: () => number, energyPrice?: number): CoordinatorMetrics {
  const registry = createRegistry('coordinator');
  const farm: () => Promise<FarmCounts> = perScrape(() => engine.gallery.farmCounts());
  const nodeSums: () => Promise<NodeCostSumRow[]> = perScrape(() => engine.costs.nodeSums());

  new Gauge({
    name: 'nightshift_jobs',
    help: 'Jobs by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const rows = (await farm()).jobs;
      for (const state of JOB_STATES) this.set({ state }, rows.find((r) => r.state === state)?.n ?? 0);
    },
  });
  new Gauge({
    name: 'nightshift_sweeps',
    help: 'Sweeps by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const rows = (await farm()).sweeps;
      this.reset();
      for (const r of rows) this.set({ status: r.status }, r.n);
    },
  });
  new Gauge({
    name: 'nightshift_nodes',
    help: 'gpu-nodes known to the coordinator, by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const known = (await farm()).nodes;
      const online = onlineNodes();
      this.set({ status: 'online' }, online);
      this.set({ status: 'offline' }, Math.max(0, known - online));
    },
  });
  new Gauge({
    name: 'nightshift_outbox_pending',
    help: 'Events written but not yet published to NATS',
    registers: [registry],
    async collect() {
      this.set((await farm()).outboxPending);
    },
  });
  /** A counter whose value per node is read from the cost sums at each scrape. */
  const costCounter = (name: string, help: string, value: (r: NodeCostSumRow) => number | undefined) =>
    new Counter({
      name,
      help,
      labelNames: ['node'],
      registers: [registry],
      async collect() {
        const rows = await nodeSums();
        this.reset();
        for (const r of rows) {
          const v = value(r);
          if (v !== undefined) this.inc({ node: r.node_id }, v);
        }
      },
    });
  costCounter('nightshift_gpu_seconds_total', 'GPU time of rendered jobs as nodes report it (backend wall time; a params.batch call divided among its jobs)', (r) => r.gpu_ms / 1000);
  costCounter('nightshift_renders_metered_total', 'Rendered jobs reported with a cost (a job rendered on two nodes counts on both)', (r) => r.renders);
  costCounter('nightshift_renders_energy_measured_total', 'Rendered jobs whose energy the node measured (nvidia-smi power.draw); the rest are not measured', (r) => r.measured_renders);
  costCounter('nightshift_energy_joules_total', 'Energy of the measured renders only (never estimated)', (r) => r.energy_joules);
  if (energyPrice !== undefined) {
    costCounter('nightshift_energy_cost_total', 'Measured energy × NIGHTSHIFT_ENERGY_PRICE per kWh (no currency)', (r) => (r.energy_joules / 3_600_000) * energyPrice);
  }
  const leases = new Counter({ name: 'nightshift_leases_total', help: 'Jobs leased to nodes (the dispatch rate is its rate())', registers: [registry] });
  const completed = new Counter({ name: 'nightshift_jobs_completed_total', help: 'Accepted job results', labelNames: ['skipped'], registers: [registry] });
  const renderSeconds = new Histogram({
    name: 'nightshift_render_seconds',
    help: "Render time reported by nodes (renderMs), rendered jobs only",
    buckets: [...RENDER_SECONDS_BUCKETS],
    registers: [registry],
  });
  const nodeDowns = new Counter({ name: 'nightshift_node_down_total', help: 'Nodes marked down after going silent', registers: [registry] });
  const requeued = new Counter({ name: 'nightshift_jobs_requeued_total', help: 'Jobs requeued because their node went down', registers: [registry] });
  const refused = new Counter({ name: 'nightshift_node_auth_refused_total', help: 'Node connections refused for a bad token', labelNames: ['reason'], registers: [registry] });
  const resultsRefused = new Counter({
    name: 'nightshift_results_refused_total',
    help: "Result reports refused: a job the node does not hold, keys not the job's own, or an image not in storage",
    labelNames: ['reason'],
    registers: [registry],
  });

  return {
    registry,
    observer: {
      leased: (n) => leases.inc(n),
      completed: (renderMs, skipped) => {
        completed.inc({ skipped: String(skipped) });
        if (!skipped) renderSeconds.observe(renderMs / 1000);
      },
      nodeDown: (n) => {
        nodeDowns.inc();
        requeued.inc(n);
      },
      refused: (reason) => refused.inc({ reason }),
      resultRefused: (reason) => resultsRefused.inc({ reason }),
    },
  };
}
