/**
 * Sweep operations shared by the HTTP and gRPC APIs, so both transports
 * validate, expand, store and report in exactly the same way.
 */
import { z } from 'zod';
import { estimateVramMb, expandSweepLazily, parseSpec, SpecError, sweepModel, type ExpandedJob, type WildcardLists } from '@nightshift/sweep';
import { expansionLimits, fieldIssues, imageKey, renderKeyOfImageRef, thumbKey } from '@nightshift/common';
import type { SweepDeps } from './deps.js';
import type { JobRow, NewJob, SweepCounts, SweepRow } from './store-engine/engine.js';
import { keyJobsByHash, type ResolvedModel } from './sweep-model.js';
import { LOCAL_ADMIN, mayUse, type Caller } from './callers.js';
import { checkQuota, withinQuota } from './quota.js';
import { indexerHeaders } from './indexer-proxy.js';

export interface SweepView {
  id: string;
  name: string;
  kind: string;
  status: SweepRow['status'];
  priority: number;
  backend: string;
  total: number;
  counts: SweepCounts;
  /** Images per second over the recent finishes, and the estimate it gives. */
  rate: number | null;
  etaSeconds: number | null;
  createdAt: string;
  finishedAt: string | null;
}

/**
 * `lists`: the wildcard lists the spec uses, read from the bucket beforehand
 * (wildcards-store.ts specWildcards); `registry`: the registry model it names,
 * resolved beforehand (sweep-model.ts specModel). The sweep is `caller`'s,
 * within their daily image quota (QuotaExceeded otherwise).
 */
export async function submitSweep(deps: SweepDeps, input: unknown, lists?: WildcardLists, registry?: ResolvedModel, caller: Caller = LOCAL_ADMIN): Promise<{ id: string; jobs: number }> {
  const spec = parseSpec(input);
  // Expanded lazily (the count is known before any job is made); the quota is checked before they are.
  const { total, jobs } = expandSweepLazily(spec, expansionLimits(deps.config), lists);
  const quota = await checkQuota(deps.engine, caller.user, total, Date.now());
  const model = sweepModel(spec);
  const sweep = await withinQuota(deps.engine, caller.user, () =>
    deps.engine.createSweep(
      {
        name: spec.name ?? spec.prompts[0]!.slice(0, 80),
        spec,
        priority: spec.priority,
        backend: spec.backend,
        model,
        ...(registry ? { modelHash: registry.hash, modelBytes: registry.bytes } : {}),
        owner: caller.user,
        ...(quota ? { quota } : {}),
        // Counted before they are made: a big sweep is stored in parts, and the nodes start on the first.
        expectedJobs: total,
        partStored: () => offerWork(deps),
      },
      // Made as they are stored: a 100,000-job sweep is never in memory whole.
      asStored(jobs, registry),
    ),
  );
  deps.log.info({ sweep: sweep.id, jobs: sweep.total, name: sweep.name }, 'sweep submitted');
  void offerWork(deps);
  return { id: sweep.id, jobs: sweep.total };
}

/** Each expanded job as stored, one at a time: keyed by the registry model's hash if any, with its VRAM floor. */
function* asStored(jobs: Iterable<ExpandedJob>, registry: ResolvedModel | undefined): Generator<NewJob> {
  for (const j of jobs) {
    if (registry) keyJobsByHash([j], registry.hash);
    yield Object.assign(j, { minVramMb: estimateVramMb(Number(j.params.width), Number(j.params.height)) });
  }
}

/** `model`: a registry upscaler (name or hash), resolved beforehand by sweep-model.ts upscaleModel. */
const upscaleModelField = z.string().min(1).max(128).optional();
const UpscaleSchema = z.union([
  z.strictObject({ keys: z.array(z.string().min(1)).min(1, 'needs at least one image key').max(10_000), priority: z.number().int().min(-100).max(100).default(0), model: upscaleModelField }),
  z.strictObject({ sweep: z.string().min(1), favorites: z.boolean().default(false), priority: z.number().int().min(-100).max(100).default(0), model: upscaleModelField }),
]);

/**
 * Creates an upscale batch (a sweep of kind "upscale"): one job per image,
 * given as keys or as "the favorites of sweep X" (favorites live in the
 * indexer, so they are asked from it).
 */
export async function submitUpscale(deps: SweepDeps, input: unknown, caller: Caller = LOCAL_ADMIN, registry?: ResolvedModel): Promise<{ id: string; jobs: number }> {
  // Another user's sweep or image is as unknown as a missing one.
  const mine = async (sweepId: string) => {
    const s = await deps.engine.getSweep(sweepId);
    return s !== undefined && mayUse(caller, s.owner);
  };
  const parsed = UpscaleSchema.safeParse(input);
  if (!parsed.success) throw new SpecError('invalid upscale request', fieldIssues(parsed.error.issues));
  const req = parsed.data;
  if (req.model !== undefined && req.model !== 'default' && registry?.name !== req.model) {
    throw new SpecError('invalid upscale request', [{ path: 'model', message: `model ${req.model} was not resolved in the registry` }]);
  }
  // Jobs name the registry upscaler and carry its hash (nodes pull it); else each node's configured one.
  const model = registry?.name ?? 'default';
  let renderKeys: string[];
  if ('keys' in req) {
    renderKeys = req.keys.map(renderKeyOfImageRef);
  } else {
    if (!(await mine(req.sweep))) throw new SpecError('invalid upscale request', [{ path: 'sweep', message: `no such sweep: ${req.sweep}` }]);
    renderKeys = req.favorites ? await favoritesOf(deps, req.sweep, caller.user) : (await deps.engine.listings.jobs(req.sweep, ['done', 'skipped'])).map((j) => j.render_key);
  }
  // Every key's shape first (a bad one is refused before any is looked up, as before), then each image in order.
  for (const rk of renderKeys) if (!/^[0-9a-f]{64}$/.test(rk)) throw new SpecError('invalid upscale request', [{ path: 'keys', message: `not an image key: ${rk}` }]);
  const sources: JobRow[] = [];
  for (const rk of renderKeys) {
    const job = await deps.engine.listings.renderedJob(rk);
    if (!job || !(await mine(job.sweep_id))) throw new SpecError('invalid upscale request', [{ path: 'keys', message: `no rendered image with key ${rk}` }]);
    sources.push(job);
  }
  if (!sources.length) throw new SpecError('invalid upscale request', [{ path: 'sweep', message: 'that sweep has no favorites to upscale' }]);
  const quota = await checkQuota(deps.engine, caller.user, sources.length, Date.now());
  const sweep = await withinQuota(deps.engine, caller.user, () => deps.engine.createSweep(
    {
      name: `upscale ×4 of ${sources.length} image(s)${registry ? ` with ${registry.name}` : ''}`,
      spec: req,
      priority: req.priority,
      backend: 'upscale',
      model,
      kind: 'upscale',
      owner: caller.user,
      ...(registry ? { modelHash: registry.hash, modelBytes: registry.bytes } : {}),
      ...(quota ? { quota } : {}),
    },
    sources.map((src, i) => ({
      index: i,
      renderKey: src.render_key,
      prompt: src.prompt,
      seed: src.seed,
      params: JSON.parse(src.params_json) as Record<string, unknown>,
      axes: {},
      backend: 'upscale',
      model,
      kind: 'upscale' as const,
      sourceKey: imageKey(src.render_key),
      minVramMb: 0,
    })),
  ));
  void offerWork(deps);
  return { id: sweep.id, jobs: sources.length };
}

/** `user`'s favorites among the sweep's images (favorites are per user in the indexer). */
async function favoritesOf(deps: SweepDeps, sweepId: string, user: string): Promise<string[]> {
  const url = `${deps.config.NIGHTSHIFT_INDEXER_URL}/api/favorites?sweep=${encodeURIComponent(sweepId)}`;
  const res = await fetch(url, { headers: indexerHeaders(deps.config.NIGHTSHIFT_API_TOKEN, user) }).catch(() => undefined);
  if (!res?.ok) throw new Error('cannot list favorites: the indexer is unreachable or does not answer /api/favorites');
  const body = (await res.json()) as { favorites: { renderKey: string }[] };
  return body.favorites.map((f) => f.renderKey);
}

/** Offers new or changed work to the nodes now (live clients and the outbox heard of it through the Store's commit hook); resolves once the fills have run. */
function offerWork(deps: SweepDeps): Promise<void> {
  return deps.hub.dispatch();
}

/** Rate from the recent finishes; ETA = remaining / rate. */
async function eta(deps: SweepDeps, row: SweepRow, counts: SweepCounts): Promise<{ rate: number | null; etaSeconds: number | null }> {
  const remaining = counts.queued + counts.running;
  const recent = await deps.engine.recentFinishes(row.id, 100);
  if (recent.length < 2) return { rate: null, etaSeconds: null };
  const span = (recent[0]!.finished_at - recent[recent.length - 1]!.finished_at) / 1000;
  if (span <= 0) return { rate: null, etaSeconds: null };
  const rate = (recent.length - 1) / span;
  return { rate: Number(rate.toFixed(3)), etaSeconds: remaining === 0 ? 0 : Math.ceil(remaining / rate) };
}

export async function sweepView(deps: SweepDeps, row: SweepRow): Promise<SweepView> {
  const counts = await deps.engine.counts(row.id);
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    status: row.status,
    priority: row.priority,
    backend: row.backend,
    total: row.total,
    counts,
    ...(await eta(deps, row, counts)),
    createdAt: new Date(row.created_at).toISOString(),
    finishedAt: row.finished_at ? new Date(row.finished_at).toISOString() : null,
  };
}

export async function cancelSweep(deps: SweepDeps, id: string): Promise<boolean> {
  if (!(await deps.engine.getSweep(id))) return false;
  const running = await deps.engine.cancelSweep(id);
  deps.hub.cancelJobs(running, 'sweep cancelled');
  void offerWork(deps);
  return true;
}

export async function pauseSweep(deps: SweepDeps, id: string, paused: boolean): Promise<boolean> {
  if (!(await deps.engine.setPaused(id, paused))) return false;
  void offerWork(deps);
  return true;
}

export async function setPriority(deps: SweepDeps, id: string, priority: unknown): Promise<boolean> {
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < -100 || priority > 100) {
    throw new SpecError('invalid priority', [{ path: 'priority', message: 'must be an integer from -100 to 100' }]);
  }
  if (!(await deps.engine.setPriority(id, priority))) return false;
  void offerWork(deps);
  return true;
}

export interface ImageView {
  jobId: string;
  key: string;
  url: string;
  thumbUrl: string;
  renderKey: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  node: string | null;
  renderMs: number | null;
  state: string;
}

export function imageView(job: JobRow, fileUrl: (key: string) => string): ImageView {
  return {
    jobId: job.id,
    key: job.image_key!,
    url: fileUrl(job.image_key!),
    thumbUrl: fileUrl(job.thumb_key || thumbKey(job.render_key)),
    renderKey: job.render_key,
    prompt: job.prompt,
    seed: job.seed,
    params: JSON.parse(job.params_json) as Record<string, unknown>,
    node: job.node_id,
    renderMs: job.render_ms,
    state: job.state,
  };
}
