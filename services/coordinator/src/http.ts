/**
 * The coordinator's HTTP API (docs/design.md "HTTP API: coordinator") on Hono. Handlers stay
 * thin: parse, call the shared sweep operations, shape the JSON.
 */
import { Hono, type Context } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import { HTTPException } from 'hono/http-exception';
import { SpecError } from '@nightshift/sweep';
import { filesRoute, opsRoutes } from '@nightshift/common';
import type { HttpDeps } from './deps.js';
import type { LiveEvent } from './live.js';
import { guardOptions, requestGuard } from './request-guard.js';

const SNAPSHOT_INTERVAL_MS = 250;
import { createDashboard } from './dashboard/index.js';
import { cancelSweep, imageView, pauseSweep, setPriority, submitSweep, submitUpscale, sweepView } from './sweeps.js';

export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();
  app.use('*', requestGuard(guardOptions(deps.config)));
  const token = deps.config.NIGHTSHIFT_API_TOKEN;
  if (token) {
    app.use('/api/*', bearerAuth({ token }));
    app.use('/files/*', bearerAuth({ token }));
  }
  const fileUrl = (c: Context) => (key: string) => `${new URL(c.req.url).origin}/files/${key}`;

  app.get('/healthz', (c) => c.json({ ok: true }));
  if (deps.ops) opsRoutes(app, deps.ops, deps.config.NIGHTSHIFT_METRICS_TOKEN);

  /** JSON body in, 201 out; malformed JSON and spec errors become readable 400s, oversize bodies 413. */
  const submitRoute = (run: (body: unknown) => unknown) => [
    bodyLimit({ maxSize: 1024 * 1024, onError: (c) => c.json({ error: 'request body too large (limit 1 MiB)', details: [] }, 413) }),
    async (c: Context) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
      }
      try {
        return c.json(await run(body), 201);
      } catch (err) {
        if (err instanceof SpecError) return c.json({ error: err.message, details: err.details }, 400);
        throw err;
      }
    },
  ] as const;

  app.post('/api/sweeps', ...submitRoute((body) => submitSweep(deps, body)));

  app.get('/api/sweeps', (c) => c.json({ sweeps: deps.store.listSweeps().map((s) => sweepView(deps, s)) }));

  app.get('/api/sweeps/:id', (c) => {
    const row = deps.store.getSweep(c.req.param('id'));
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    const failed = deps.store.jobs(row.id, ['failed']).slice(0, 20).map((j) => ({ jobId: j.id, prompt: j.prompt, seed: j.seed, error: j.error, logTail: j.log_tail }));
    return c.json({ ...sweepView(deps, row), spec: JSON.parse(row.spec_json) as unknown, failedJobs: failed, explain: deps.placement.explain(row.id), blocklisted: deps.store.blockedNodes(row.id) });
  });

  app.get('/api/sweeps/:id/jobs', (c) => {
    const row = deps.store.getSweep(c.req.param('id'));
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    return c.json({
      jobs: deps.store.jobs(row.id).map((j) => ({
        id: j.id,
        index: j.idx,
        state: j.state,
        prompt: j.prompt,
        seed: j.seed,
        axes: JSON.parse(j.axes_json) as unknown,
        renderKey: j.render_key,
        node: j.node_id,
        attempts: j.attempts,
        error: j.error,
        thumbUrl: j.thumb_key ? fileUrl(c)(j.thumb_key) : null,
      })),
    });
  });

  app.get('/api/sweeps/:id/images', (c) => {
    const row = deps.store.getSweep(c.req.param('id'));
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    const images = deps.store.jobs(row.id, ['done', 'skipped']).map((j) => imageView(j, fileUrl(c)));
    return c.json({ images });
  });

  const actions = {
    cancel: (id: string) => cancelSweep(deps, id),
    pause: (id: string) => pauseSweep(deps, id, true),
    resume: (id: string) => pauseSweep(deps, id, false),
  };
  for (const [action, run] of Object.entries(actions)) {
    app.post(`/api/sweeps/:id/${action}`, (c) => {
      const id = c.req.param('id');
      const row = deps.store.getSweep(id);
      if (!row) return c.json({ error: 'no such sweep' }, 404);
      if (!run(id)) return c.json({ error: `cannot ${action} a sweep that is ${row.status}` }, 409);
      return c.json(sweepView(deps, deps.store.getSweep(id)!));
    });
  }

  app.post('/api/sweeps/:id/priority', async (c) => {
    const id = c.req.param('id');
    if (!deps.store.getSweep(id)) return c.json({ error: 'no such sweep' }, 404);
    const body = (await c.req.json().catch(() => ({}))) as { priority?: unknown };
    try {
      setPriority(deps, id, body.priority);
    } catch (err) {
      if (err instanceof SpecError) return c.json({ error: err.message, details: err.details }, 400);
      throw err;
    }
    return c.json(sweepView(deps, deps.store.getSweep(id)!));
  });

  app.post('/api/upscale', ...submitRoute((body) => submitUpscale(deps, body)));

  app.get('/api/nodes', (c) => {
    const connected = new Set(deps.hub.connectedNodeIds());
    return c.json({
      nodes: deps.store.listNodes().map((n) => ({
        id: n.id,
        name: n.name,
        status: connected.has(n.id) ? 'online' : 'offline',
        capabilities: JSON.parse(n.capabilities_json) as unknown,
        lastSeen: new Date(n.last_seen).toISOString(),
        jobsDone: n.jobs_done,
        currentJobs: deps.store.leasedTo(n.id).map((j) => j.id),
      })),
    });
  });

  app.get('/api/events', (c) => {
    const only = c.req.query('sweep');
    return streamSSE(c, async (stream) => {
      const queue: LiveEvent[] = [];
      // Sweep snapshots cost a count over the sweep's jobs: coalesce them to a few per second.
      const dirty = new Set<string>();
      let wake: (() => void) | undefined;
      const unsubscribe = deps.live.subscribe((e) => {
        if (only && 'sweepId' in e && e.sweepId !== only) return;
        if (e.type === 'sweep') dirty.add(e.sweepId);
        else queue.push(e);
        wake?.();
      });
      stream.onAbort(unsubscribe);
      await stream.writeSSE({ event: 'hello', data: JSON.stringify({ at: new Date().toISOString() }) });
      let lastSnapshots = 0;
      while (!stream.aborted) {
        for (let e = queue.shift(); e; e = queue.shift()) await stream.writeSSE({ event: e.type, data: JSON.stringify(e) });
        const wait = SNAPSHOT_INTERVAL_MS - (Date.now() - lastSnapshots);
        if (dirty.size && wait <= 0) {
          for (const sweepId of [...dirty]) {
            dirty.delete(sweepId);
            await stream.writeSSE({ event: 'sweep', data: JSON.stringify({ type: 'sweep', sweepId, sweep: sweepSnapshot(deps, sweepId) }) });
          }
          lastSnapshots = Date.now();
          continue;
        }
        const woke = await new Promise<boolean>((r) => {
          wake = () => r(true);
          setTimeout(() => r(false), dirty.size ? Math.max(wait, 10) : 15_000);
        });
        wake = undefined;
        if (!woke && !queue.length && !dirty.size) await stream.writeSSE({ event: 'ping', data: '{}' });
      }
      unsubscribe();
    });
  });

  app.route('/files', filesRoute(deps.storage));

  // Search lives in the indexer; the coordinator proxies it so clients need one address.
  const proxy = async (c: Context) => {
    const url = new URL(c.req.url);
    const target = `${deps.config.NIGHTSHIFT_INDEXER_URL}${url.pathname}${url.search}`;
    try {
      const res = await fetch(target, { method: c.req.method, headers: token ? { authorization: `Bearer ${token}` } : {} });
      return c.body(await res.text(), res.status as 200, { 'Content-Type': res.headers.get('content-type') ?? 'application/json' });
    } catch {
      return c.json({ error: 'search is unavailable: the indexer cannot be reached' }, 503);
    }
  };
  app.get('/api/search', proxy);
  app.get('/api/favorites', proxy);
  app.get('/api/images/:key{.+}', proxy);
  app.put('/api/favorites/:key{.+}', proxy);
  app.delete('/api/favorites/:key{.+}', proxy);
  app.post('/api/reindex', proxy);

  app.route('/', createDashboard(deps));

  app.onError((err, c) => {
    // bearerAuth and bodyLimit throw HTTP errors (401, 413) that must reach the client as such.
    if (err instanceof HTTPException) return err.getResponse();
    deps.log.error({ err: String(err), path: c.req.path }, 'request failed');
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

function sweepSnapshot(deps: HttpDeps, id: string) {
  const row = deps.store.getSweep(id);
  return row ? sweepView(deps, row) : undefined;
}
