/**
 * Operability endpoints shared by the services: Prometheus `/metrics`,
 * `/healthz` (the process is up) and `/readyz` (its dependencies answer).
 * Hono apps mount `opsRoutes`; the gpu-node, which has no HTTP API, runs
 * `startOpsServer` on its own port.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { bearerMatches } from './bearer.js';
import type { AddressInfo } from 'node:net';
import type { Context, Hono } from 'hono';
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

/**
 * Who may read /metrics and /readyz's details (they name hosts, versions and
 * dependencies): with NIGHTSHIFT_METRICS_TOKEN, whoever sends it as a bearer
 * token; without one, loopback clients only. Others get /readyz's status
 * code alone (what an orchestrator's probe needs); /healthz stays open.
 */
export function opsAllowed(remoteAddress: string | undefined, authorization: string | undefined, token: string | undefined): boolean {
  if (token) return bearerMatches(token, authorization);
  return remoteAddress === undefined || isLoopbackIp(remoteAddress);
}

const isLoopbackIp = (a: string) => a === '::1' || /^(::ffff:)?127\./.test(a);

const OPS_REFUSED = { error: 'metrics and readiness are served to loopback clients, or with NIGHTSHIFT_METRICS_TOKEN as a bearer token' };

export function opsRoutes(app: Hono, ops: Ops, token?: string): void {
  // In-process requests (tests) have no socket: they come from this machine.
  const allowed = (c: Context) => opsAllowed((c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.remoteAddress, c.req.header('authorization'), token);
  app.get('/metrics', async (c) => {
    if (!allowed(c)) return c.json(OPS_REFUSED, 403);
    return c.body(await ops.registry.metrics(), 200, { 'Content-Type': ops.registry.contentType });
  });
  app.get('/readyz', async (c) => {
    const r = await runChecks(ops.checks);
    return c.json(allowed(c) ? r : { ready: r.ready }, r.ready ? 200 : 503);
  });
}

/** A small HTTP server with /metrics, /healthz and /readyz only. */
export async function startOpsServer(host: string, port: number, ops: Ops, token?: string): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => res.writeHead(status, { 'Content-Type': type }).end(body);
    if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'application/json', JSON.stringify({ ok: true }));
    const allowed = opsAllowed(req.socket.remoteAddress, req.headers.authorization, token);
    if (path === '/readyz') {
      void runChecks(ops.checks).then((r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(allowed ? r : { ready: r.ready })));
      return;
    }
    if (path === '/metrics' && !allowed) return send(403, 'application/json', JSON.stringify(OPS_REFUSED));
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
