/**
 * /api/models (docs/design.md "Model registry"): the models registered in the
 * farm's bucket. `GET /api/models` lists them with the nodes that advertise
 * each one; `GET /api/models/:ref` shows one by name or hash;
 * `DELETE /api/models/:name` removes a name (and its content when no other
 * name points at it), refused while queued work needs the model. Adding is
 * `nightshift models add`, which uploads straight to the bucket (multipart,
 * resumable) with the farm's NIGHTSHIFT_S3_* settings.
 */
import { Hono } from 'hono';
import type { Storage } from '@nightshift/common';
import { listModels, removeModel, resolveModel, type ModelManifest, type RegistryStorage } from '@nightshift/registry';
import type { ListingEngine, NodeEngine, StoreEngine } from './store-engine/engine.js';
import type { NodeModels } from './node-models.js';

export interface ModelsDeps {
  /** The whole Storage in the running coordinator; handler tests may give less, and then the routes answer 503. */
  storage: Pick<Storage, 'get'> | RegistryStorage;
  engine: { nodes: Pick<NodeEngine, 'listNodes'> };
  /** Why a model may not be removed now (queued jobs need it), or undefined. Absent: nothing is checked. */
  modelInUse?: (hash: string) => Promise<string | undefined>;
  /** Connected nodes' model caches (what they pulled from the registry); absent in handler tests that need none. */
  hub?: { models?: Pick<NodeModels, 'holders'> | undefined };
}

export interface ModelView {
  name: string;
  hash: string;
  kind: string;
  size: number;
  files: ModelManifest['files'];
  addedAt: string;
  /** Ids of the nodes holding it: in their model cache (connected nodes), or advertised by hash or name in their capabilities' `models`. */
  nodes: string[];
}

const hasBucket = (s: ModelsDeps['storage']): s is RegistryStorage => 'client' in s && 'bucket' in s;

/**
 * `modelInUse` from the sweeps: a model is in use while a sweep that
 * resolved to its hash at submit still has queued or running jobs.
 */
export function sweepsUsingModel(engine: Pick<StoreEngine, 'counts'> & { listings: Pick<ListingEngine, 'listSweeps'> }): (hash: string) => Promise<string | undefined> {
  return async (hash) => {
    const busy: { id: string; c: Awaited<ReturnType<StoreEngine['counts']>> }[] = [];
    for (const s of await engine.listings.listSweeps()) {
      if (s.model_hash !== hash || ['done', 'failed', 'cancelled'].includes(s.status)) continue;
      const c = await engine.counts(s.id);
      if (c.queued + c.running > 0) busy.push({ id: s.id, c });
    }
    if (!busy.length) return undefined;
    return busy.map(({ id, c }) => `${c.queued + c.running} queued or running job(s) of sweep ${id}`).join(', ');
  };
}

/** The registered nodes, read once per answer. */
type NodeList = Awaited<ReturnType<NodeEngine['listNodes']>>;

function holders(deps: ModelsDeps, nodes: NodeList, hash: string, names: string[]): string[] {
  const advertised = nodes
    .filter((n) => {
      const caps = JSON.parse(n.capabilities_json) as { models?: unknown };
      return Array.isArray(caps.models) && caps.models.some((m) => typeof m === 'string' && names.includes(m));
    })
    .map((n) => n.id);
  return [...new Set([...(deps.hub?.models?.holders(hash) ?? []), ...advertised])].sort();
}

const view = (deps: ModelsDeps, nodes: NodeList, name: string, m: ModelManifest): ModelView => ({
  name,
  hash: m.hash,
  kind: m.kind,
  size: m.totalSize,
  files: m.files,
  addedAt: m.addedAt,
  nodes: holders(deps, nodes, m.hash, [m.hash, name]),
});

const refError = (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) });

export function modelsRoute(deps: ModelsDeps): Hono {
  const app = new Hono();
  const { storage } = deps;
  if (!hasBucket(storage)) {
    app.all('*', (c) => c.json({ error: 'the model registry needs the bucket, and this coordinator has none' }, 503));
    return app;
  }

  app.get('/', async (c) => {
    const nodes = await deps.engine.nodes.listNodes();
    return c.json({ models: (await listModels(storage)).map((m) => view(deps, nodes, m.name, m.manifest)) });
  });

  app.get('/:ref', async (c) => {
    const ref = c.req.param('ref');
    let m: ModelManifest | undefined;
    try {
      m = await resolveModel(storage, ref);
    } catch (err) {
      return c.json(refError(err), 400);
    }
    if (!m) return c.json({ error: `no model ${ref}` }, 404);
    return c.json(view(deps, await deps.engine.nodes.listNodes(), /^[0-9a-f]{64}$/.test(ref) ? m.name : ref, m));
  });

  app.delete('/:name', async (c) => {
    const name = c.req.param('name');
    let m: ModelManifest | undefined;
    try {
      if (/^[0-9a-f]{64}$/.test(name)) throw new Error('remove a model by its name, not its hash');
      m = await resolveModel(storage, name);
    } catch (err) {
      return c.json(refError(err), 400);
    }
    if (!m) return c.json({ error: `no model ${name}` }, 404);
    const busy = await deps.modelInUse?.(m.hash);
    if (busy) return c.json({ error: `model ${name} is in use: ${busy}` }, 409);
    const removed = await removeModel(storage, name);
    if (!removed) return c.json({ error: `no model ${name}` }, 404);
    return c.json({ name, ...removed });
  });

  return app;
}
