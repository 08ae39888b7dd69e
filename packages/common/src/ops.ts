/**
 * Operability endpoints shared by the services: Prometheus `/metrics`,
 * `/healthz` (the process is up) and `/readyz` (its dependencies answer).
 * Hono apps mount `opsRoutes`; the gpu-node, which has no HTTP API, runs
 * `startOpsServer` on its own port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Storage } from './storage.js';

/** A readiness check resolves when the dependency answers and throws (or times out) when it does not. */
export type ReadyCheck = () => Promise<unknown> | unknown;

export interface Ops {
  registry: Registry;
  checks: Record<string, ReadyCheck>;
}

/** Histogram buckets for render times, in seconds: the same on the coordinator and the nodes so the two compare. */
export const RENDER_SECONDS_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

/** A registry with the standard process metrics (CPU, memory, event-loop lag, handles). */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export async function runChecks(checks: Record<string, ReadyCheck>, timeoutMs = 2_000): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(() => checks[name]!()),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs))),
        ]);
        return 'ok';
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: Record<string, string> = {};
  names.forEach((n, i) => (out[n] = results[i]!));
  return { ready: results.every((r) => r === 'ok'), checks: out };
}

export function opsRoutes(app: Hono, ops: Ops): void {
  app.get('/metrics', async (c) => c.body(await ops.registry.metrics(), 200, { 'Content-Type': ops.registry.contentType }));
  app.get('/readyz', async (c) => {
    const r = await runChecks(ops.checks);
    return c.json(r, r.ready ? 200 : 503);
  });
}

/** A small HTTP server with /metrics, /healthz and /readyz only. */
export async function startOpsServer(host: string, port: number, ops: Ops): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => res.writeHead(status, { 'Content-Type': type }).end(body);
    if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'application/json', JSON.stringify({ ok: true }));
    if (path === '/readyz') {
      void runChecks(ops.checks).then((r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r)));
      return;
    }
    if (path === '/metrics') {
      void ops.registry.metrics().then(
        (text) => send(200, ops.registry.contentType, text),
        (err: unknown) => send(500, 'text/plain', String(err)),
      );
      return;
    }
    send(404, 'text/plain', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** NATS answers a ping (fails while disconnected or reconnecting). */
export function natsCheck(nc: () => NatsConnection | undefined): ReadyCheck {
  return async () => {
    const conn = nc();
    if (!conn) throw new Error('not connected yet');
    if (conn.isClosed()) throw new Error('connection closed');
    await conn.flush();
  };
}

/** The bucket is reachable and exists. */
export function s3Check(storage: Pick<Storage, 'client' | 'bucket'>): ReadyCheck {
  return async () => {
    if (!(await storage.client.bucketExists(storage.bucket))) throw new Error(`bucket ${storage.bucket} does not exist`);
  };
}
