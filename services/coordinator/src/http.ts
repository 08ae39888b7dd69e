/**
 * The coordinator's HTTP API (docs/design.md "HTTP API: coordinator") on Hono. Handlers stay
 * thin: parse, call the shared sweep operations, shape the JSON.
 */
import { mkdirSync } from 'node:fs';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { SpecError } from '@nightshift/sweep';
import { filesRoute, opsRoutes } from '@nightshift/common';
import type { HttpDeps } from './deps.js';
import { guardOptions, requestGuard } from './request-guard.js';
import { tooLarge } from './body-rules.js';
import { eventsRoute } from './sse.js';
import { pageInfo, pageOf } from './paging.js';
import { createDashboard } from './dashboard/index.js';
import { REMIX_PATH, remixRoute } from './remix.js';
import { modelsRoute, sweepsUsingModel } from './models.js';
import { nodeSleepView } from './node-hub.js';
import { webhookRoutes } from './webhooks-routes.js';
import { albumRoutes } from './albums-routes.js';
import { createShares, SHARE_PATH } from './shares.js';
import { wildcardsRoute } from './wildcards.js';
import { specWildcards } from './wildcards-store.js';
import { advertisedBy, specModel, upscaleModel } from './sweep-model.js';
import { authRequired, callerAuth, callerOf, identify, mayUse, ownerFilter, type Caller } from './callers.js';
import type { LiveEvent } from './live.js';
import { keyRoutes, meRoute } from './keys-routes.js';
import { mayUseFile, mayUseImage } from './owned-images.js';
import { indexerProxy } from './indexer-proxy.js';
import { QuotaExceeded } from './quota.js';
import { mayUseWildcard } from './wildcard-owners.js';
import { cancelSweep, imageView, pauseSweep, setPriority, submitSweep, submitUpscale, sweepView, type SweepView } from './sweeps.js';
import { sweepCostView } from './sweep-cost.js';
import { loadShareSecret } from './shares-token.js';

/** Job and node events held for one slow SSE client. */
const SSE_QUEUE = 1_000;

export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();
  // A request's writes commit one by one before each resolves (on SQLite none joins the node hub's turn): an answer tells only of what is durable.
  app.use('*', (_c, next) => deps.engine.unbatched(() => next()));
  app.use('*', requestGuard(guardOptions(deps.config)));
  // No route reads more than this; the ones that take small bodies say less below. Remix uploads set their own (20 MB).
  const oneMiB = tooLarge(1024 * 1024, '1 MiB');
  app.use('*', (c, next) => (c.req.path === REMIX_PATH ? next() : oneMiB(c, next)));
  const token = deps.config.NIGHTSHIFT_API_TOKEN;
  // Every /api and /files request names its caller (callers.ts): the farm token, a named key, or nobody on an open farm.
  app.use('/api/*', callerAuth(deps.engine, token));
  app.use('/files/*', callerAuth(deps.engine, token));
  // Behind a token or key, images are private to whoever fetched them.
  app.use('/files/*', async (c, next) => {
    await next();
    if (c.res.status === 200 && (await authRequired(deps.engine, token))) c.res.headers.set('Cache-Control', 'private, max-age=3600');
  });
  /** The route's sweep if the caller may use it: another user's is as absent as a missing one (404, nothing leaked). */
  const ownSweep = async (c: Context) => {
    const row = await deps.engine.getSweep(c.req.param('id') ?? '');
    return row && mayUse(callerOf(c), row.owner) ? row : undefined;
  };
  const fileUrl = (c: Context) => (key: string) => `${new URL(c.req.url).origin}/files/${key}`;

  app.get('/healthz', (c) => c.json({ ok: true }));
  if (deps.ops) opsRoutes(app, deps.ops, deps.config.NIGHTSHIFT_METRICS_TOKEN);

  /** JSON body in, 201 out; malformed JSON and spec errors become readable 400s, oversize bodies 413. */
  const submitRoute = (run: (body: unknown, c: Context) => unknown) => [
    async (c: Context) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
      }
      try {
        return c.json(await run(body, c), 201);
      } catch (err) {
        if (err instanceof SpecError) return c.json({ error: err.message, details: err.details }, 400);
        if (err instanceof QuotaExceeded) return c.json({ error: err.message, quota: err.quota, wanted: err.wanted }, 429);
        throw err;
      }
    },
  ] as const;

  app.post(
    '/api/sweeps',
    ...submitRoute(async (body, c) => {
      const lists = await specWildcards(deps.storage, body, mayUseWildcard(deps.engine, callerOf(c)));
      // specModel asks synchronously which nodes advertise a name: the registered nodes, read once.
      const nodes = await deps.engine.nodes.listNodes();
      return submitSweep(deps, body, lists, await specModel({ storage: deps.storage, advertised: advertisedBy({ listNodes: () => nodes }) }, body), callerOf(c));
    }),
  );

  app.get('/api/sweeps', async (c) => {
    const page = pageOf(c, 200, 1_000);
    if ('error' in page) return c.json(page, 400);
    const owner = ownerFilter(callerOf(c));
    const rows = await deps.engine.listings.listSweeps(page, owner);
    const sweeps: SweepView[] = [];
    for (const s of rows) sweeps.push(await sweepView(deps, s));
    return c.json({ sweeps, ...pageInfo(page, rows.length, await deps.engine.listings.sweepCount(owner)) });
  });

  app.get('/api/sweeps/:id', async (c) => {
    const row = await ownSweep(c);
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    const failed = (await deps.engine.listings.jobs(row.id, ['failed'], { offset: 0, limit: 20 })).map((j) => ({ jobId: j.id, prompt: j.prompt, seed: j.seed, error: j.error, logTail: j.log_tail }));
    return c.json({
      ...(await sweepView(deps, row)),
      spec: JSON.parse(row.spec_json) as unknown,
      failedJobs: failed,
      explain: await deps.placement.explain(row.id),
      blocklisted: await deps.engine.blockedNodes(row.id),
      cost: sweepCostView(await deps.engine.costs.sweepSums(row.id), deps.config.NIGHTSHIFT_ENERGY_PRICE),
    });
  });

  app.get('/api/sweeps/:id/jobs', async (c) => {
    const row = await ownSweep(c);
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    const page = pageOf(c, 1_000, 10_000);
    if ('error' in page) return c.json(page, 400);
    const jobs = await deps.engine.listings.jobs(row.id, undefined, page);
    return c.json({
      ...pageInfo(page, jobs.length, row.total),
      jobs: jobs.map((j) => ({
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

  app.get('/api/sweeps/:id/images', async (c) => {
    const row = await ownSweep(c);
    if (!row) return c.json({ error: 'no such sweep' }, 404);
    const page = pageOf(c, 1_000, 10_000);
    if ('error' in page) return c.json(page, 400);
    const images = (await deps.engine.listings.jobs(row.id, ['done', 'skipped'], page)).map((j) => imageView(j, fileUrl(c)));
    const counts = await deps.engine.counts(row.id);
    return c.json({ images, ...pageInfo(page, images.length, counts.done + counts.skipped) });
  });

  const actions = {
    cancel: (id: string) => cancelSweep(deps, id),
    pause: (id: string) => pauseSweep(deps, id, true),
    resume: (id: string) => pauseSweep(deps, id, false),
  };
  for (const [action, run] of Object.entries(actions)) {
    app.post(`/api/sweeps/:id/${action}`, async (c) => {
      const id = c.req.param('id');
      const row = await ownSweep(c);
      if (!row) return c.json({ error: 'no such sweep' }, 404);
      if (!(await run(id))) return c.json({ error: `cannot ${action} a sweep that is ${row.status}` }, 409);
      return c.json(await sweepView(deps, (await deps.engine.getSweep(id))!));
    });
  }

  app.post('/api/sweeps/:id/priority', tooLarge(4 * 1024, '4 KiB'), async (c) => {
    const id = c.req.param('id');
    if (!(await ownSweep(c))) return c.json({ error: 'no such sweep' }, 404);
    const body = (await c.req.json().catch(() => ({}))) as { priority?: unknown };
    try {
      await setPriority(deps, id, body.priority);
    } catch (err) {
      if (err instanceof SpecError) return c.json({ error: err.message, details: err.details }, 400);
      throw err;
    }
    return c.json(await sweepView(deps, (await deps.engine.getSweep(id))!));
  });

  app.post('/api/upscale', ...submitRoute(async (body, c) => submitUpscale(deps, body, callerOf(c), await upscaleModel(deps.storage, body))));
  app.route('/api/keys', keyRoutes(deps));
  app.route('/api/me', meRoute(deps));
  app.route(REMIX_PATH, remixRoute({ storage: deps.storage, mayRead: (c, key) => mayUseFile(deps.engine, callerOf(c), key) }));
  // The model registry is the farm's: anyone reads it, only an admin removes from it.
  app.use('/api/models/*', (c, next) => (c.req.method === 'GET' || callerOf(c).admin ? next() : Promise.resolve(c.json({ error: 'only an admin may change the model registry' }, 403))));
  app.route('/api/models', modelsRoute({ ...deps, modelInUse: sweepsUsingModel(deps.engine) }));
  app.route('/api/wildcards', wildcardsRoute(deps.storage, deps.engine));
  app.route('/api/webhooks', webhookRoutes(deps));
  app.route('/api/albums', albumRoutes(deps));
  // Share links: made and revoked under /api (the token's check applies); a link opens
  // SHARE_PATH/<link token>/ alone, with no API token: the one bypass (shares-public.ts).
  // The links' signing secret: the coordinator's (in the database on PostgreSQL), else made in the data folder on first use.
  mkdirSync(deps.config.NIGHTSHIFT_DATA_DIR, { recursive: true });
  const shares = createShares(deps, deps.shareSecret ?? loadShareSecret(deps.config.NIGHTSHIFT_DATA_DIR));
  app.route('/api/shares', shares.api);
  app.route(SHARE_PATH, shares.pages);

  app.get('/api/nodes', async (c) => {
    const connected = new Set(deps.hub.connectedNodeIds());
    // Job ids name their sweep: a user is shown the jobs a node holds of their own sweeps only.
    const shown = ownJobs(deps, callerOf(c));
    const nodes = [];
    for (const n of await deps.engine.nodes.listNodes()) {
      const held = [];
      for (const j of await deps.engine.leasedTo(n.id)) if (await shown(j)) held.push(j.id);
      nodes.push({
        id: n.id,
        name: n.name,
        status: connected.has(n.id) ? 'online' : 'offline',
        capabilities: JSON.parse(n.capabilities_json) as unknown,
        lastSeen: new Date(n.last_seen).toISOString(),
        jobsDone: n.jobs_done,
        currentJobs: held,
        // Online but taking no work (its schedule, a busy GPU, a pause): why and until when.
        sleeping: nodeSleepView(deps.hub.sleepOf?.(n.id)),
        // Registry models: hashes cached, the one loaded, downloads in progress (null: no model cache reported).
        models: deps.hub.models?.of(n.id) ?? null,
      });
    }
    return c.json({ nodes });
  });

  // A pause by hand (nightshift node pause|resume), relayed to the node over its stream.
  for (const [action, paused] of [['pause', true], ['resume', false]] as const) {
    app.post(`/api/nodes/:id/${action}`, (c) => {
      if (!callerOf(c).admin) return c.json({ error: `only an admin may ${action} nodes` }, 403);
      const id = c.req.param('id');
      if (!deps.hub.setPaused?.(id, paused)) return c.json({ error: `node ${id} is not connected` }, 409);
      return c.json({ id, paused });
    });
  }

  app.get('/api/events', eventsRoute({ live: deps.live, snapshot: (id) => sweepSnapshot(deps, id), maxClients: deps.config.NIGHTSHIFT_SSE_MAX_CLIENTS, maxQueue: SSE_QUEUE, visible: (c) => ownEvents(deps, callerOf(c)), stillAllowed: (c) => sameCaller(deps, c) }));

  // Image bytes are their sweep owner's too (owned-images.ts).
  app.use('/files/*', async (c, next) => ((await mayUseFile(deps.engine, callerOf(c), c.req.path.slice('/files/'.length))) ? next() : c.json({ error: 'not found' }, 404)));
  app.route('/files', filesRoute(deps.storage));

  // Search lives in the indexer; the coordinator proxies it, as the caller (indexer-proxy.ts), so clients need one address.
  const proxy = indexerProxy(deps);
  const ownImage: MiddlewareHandler = async (c, next) => ((await mayUseImage(deps.engine, callerOf(c), c.req.param('key') ?? '')) ? next() : c.json({ error: 'unknown image key' }, 404));
  const ownSweepOnly: MiddlewareHandler = async (c, next) => ((await ownSweep(c)) ? next() : c.json({ error: 'no such sweep' }, 404));
  const adminOnly: MiddlewareHandler = (c, next) => (callerOf(c).admin ? next() : Promise.resolve(c.json({ error: 'not found' }, 404)));
  app.get('/api/search', proxy);
  app.get('/api/favorites', proxy);
  app.get('/api/images/:key{.+}', ownImage, proxy);
  app.put('/api/favorites/:key{.+}', ownImage, proxy);
  app.delete('/api/favorites/:key{.+}', ownImage, proxy);
  app.post('/api/reindex', adminOnly, proxy);
  app.get('/api/sweeps/:id/best', ownSweepOnly, proxy);
  app.get('/api/best', proxy);

  app.route('/', createDashboard(deps));

  app.onError((err, c) => {
    // bearerAuth and bodyLimit throw HTTP errors (401, 413) that must reach the client as such.
    if (err instanceof HTTPException) return err.getResponse();
    // A share link's path is its secret: logged without it.
    deps.log.error({ err: String(err), path: c.req.path.replace(/^\/s\/[^/]+/, '/s/…') }, 'request failed');
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

/** Which live events a caller sees: all for an admin; otherwise those of its own sweeps (and every non-sweep event). */
function ownEvents(deps: HttpDeps, caller: Caller): ((e: LiveEvent) => boolean | Promise<boolean>) | undefined {
  if (caller.admin) return undefined;
  const mine = ownedSweeps(deps, caller);
  return (e) => !('sweepId' in e) || mine(e.sweepId);
}

/** Which leased jobs a caller may see named: all for an admin, else those of its own sweeps. */
function ownJobs(deps: HttpDeps, caller: Caller): (job: { sweep_id: string }) => boolean | Promise<boolean> {
  if (caller.admin) return () => true;
  const mine = ownedSweeps(deps, caller);
  return (job) => mine(job.sweep_id);
}

/**
 * Whether a sweep is the caller's, read once per sweep for one request or stream (a sweep's
 * owner never changes): known answers at once, a new sweep's from the engine.
 */
function ownedSweeps(deps: HttpDeps, caller: Caller): (sweepId: string) => boolean | Promise<boolean> {
  const owners = new Map<string, boolean | Promise<boolean>>();
  return (sweepId) => {
    const known = owners.get(sweepId);
    if (known !== undefined) return known;
    const asked = deps.engine.getSweep(sweepId).then((row) => {
      const mine = row?.owner === caller.user;
      owners.set(sweepId, mine);
      return mine;
    });
    // A failed read is asked again next time rather than remembered.
    asked.catch(() => owners.delete(sweepId));
    owners.set(sweepId, asked);
    return asked;
  };
}

/** Whether the request's credentials still name the caller they named when it began (checked by long-lived streams; no cache). */
function sameCaller(deps: HttpDeps, c: Context): () => Promise<boolean> {
  const was = callerOf(c);
  const authorization = c.req.header('authorization');
  return async () => {
    const now = await identify(deps.engine, deps.config.NIGHTSHIFT_API_TOKEN, authorization);
    return now !== undefined && now.user === was.user && now.admin === was.admin;
  };
}

async function sweepSnapshot(deps: HttpDeps, id: string) {
  const row = await deps.engine.getSweep(id);
  return row ? sweepView(deps, row) : undefined;
}
