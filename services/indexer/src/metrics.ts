/**
 * The indexer's /metrics and /readyz: lag (events in the durable consumers not
 * yet delivered, read from JetStream at scrape time), images indexed, results
 * by outcome, and search latency (timed around the HTTP handler).
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { createRegistry, natsCheck, s3Check, STREAM, type Bus, type Ops, type Storage } from '@nightshift/common';
import { CONSUMER, UPSCALED_CONSUMER, type IndexConsumer } from './consumer.js';
import type { IndexStore } from './store.js';

type Fetch = (req: Request, ...rest: never[]) => Response | Promise<Response>;

export function indexerMetrics(deps: { bus: Bus; consumer: IndexConsumer; store: IndexStore; storage: Pick<Storage, 'client' | 'bucket'> }): { ops: Ops; timed<F extends Fetch>(fetch: F): F } {
  const registry = createRegistry('indexer');
  const { bus, consumer, store } = deps;
  new Gauge({
    name: 'nightshift_indexer_lag',
    help: 'Events waiting in the durable consumer, not yet delivered (JetStream num_pending)',
    labelNames: ['consumer'],
    registers: [registry],
    async collect() {
      for (const name of [CONSUMER, UPSCALED_CONSUMER]) {
        // NATS away: the series goes missing for this scrape rather than failing the whole page.
        const info = await bus.jsm.consumers.info(STREAM, name).catch(() => undefined);
        if (info) this.set({ consumer: name }, info.num_pending);
        else this.remove({ consumer: name });
      }
    },
  });
  new Gauge({ name: 'nightshift_indexer_in_flight', help: 'Events being fetched, embedded or stored', registers: [registry], collect() { this.set(consumer.stats.inFlight); } });
  new Gauge({ name: 'nightshift_indexer_images', help: 'Images in the vector index', registers: [registry], collect() { this.set(store.index.size); } });
  const seen = { indexed: 0, skipped: 0, failed: 0, refused: 0, retried: 0 };
  new Counter({
    name: 'nightshift_indexer_events_total',
    help: 'Events handled, by outcome (refused: its key is not its renderKey\'s; retried: put back after a transient failure)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      for (const k of ['indexed', 'skipped', 'failed', 'refused', 'retried'] as const) {
        this.inc({ result: k }, consumer.stats[k] - seen[k]);
        seen[k] = consumer.stats[k];
      }
    },
  });
  const search = new Histogram({
    name: 'nightshift_search_seconds',
    help: 'GET /api/search latency (text or image query, embedding included)',
    labelNames: ['status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return {
    ops: { registry, checks: { nats: natsCheck(() => bus.nc), s3: s3Check(deps.storage), catalog: () => store.catalog.count() } },
    timed<F extends Fetch>(fetch: F): F {
      return (async (req: Request, ...rest: never[]) => {
        if (new URL(req.url).pathname !== '/api/search') return fetch(req, ...rest);
        const end = search.startTimer();
        const res = await fetch(req, ...rest);
        end({ status: String(res.status) });
        return res;
      }) as F;
    },
  };
}
