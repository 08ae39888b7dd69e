/**
 * The gpu-node's /metrics, /healthz and /readyz on NIGHTSHIFT_NODE_METRICS_PORT
 * (off when unset). Ready means registered with the coordinator and S3 answering.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry, RENDER_SECONDS_BUCKETS, s3Check, startOpsServer, type Storage } from '@nightshift/common';
import type { Report } from './worker.js';

export interface NodeMetrics {
  registry: Registry;
  /** Wraps the worker's report callback to count results. */
  observe(r: Report): void;
}

export function createNodeMetrics(nodeId: string, held: () => number, connected: () => boolean): NodeMetrics {
  const registry = createRegistry('gpu-node');
  registry.setDefaultLabels({ service: 'gpu-node', node: nodeId });
  const results = new Counter({ name: 'nightshift_node_jobs_total', help: 'Jobs finished on this node, by result', labelNames: ['result'], registers: [registry] });
  const renderSeconds = new Histogram({
    name: 'nightshift_node_render_seconds',
    help: 'Render time on this node',
    buckets: [...RENDER_SECONDS_BUCKETS],
    registers: [registry],
  });
  new Gauge({ name: 'nightshift_node_jobs_held', help: 'Jobs queued or rendering on this node', registers: [registry], collect() { this.set(held()); } });
  new Gauge({ name: 'nightshift_node_connected', help: '1 while registered with the coordinator', registers: [registry], collect() { this.set(connected() ? 1 : 0); } });
  return {
    registry,
    observe(r) {
      if (r.case === 'completed') {
        results.inc({ result: r.value.skipped ? 'skipped' : 'rendered' });
        if (!r.value.skipped) renderSeconds.observe(r.value.renderMs / 1000);
      } else if (r.case === 'failed') {
        results.inc({ result: r.value.outOfMemory ? 'oom' : 'failed' });
      }
    },
  };
}

export function startNodeOpsServer(host: string, port: number, metrics: NodeMetrics, storage: Storage, connected: () => boolean, token?: string) {
  return startOpsServer(host, port, {
    registry: metrics.registry,
    checks: {
      coordinator: () => {
        if (!connected()) throw new Error('not registered with the coordinator');
      },
      s3: s3Check(storage),
    },
  }, token);
}
