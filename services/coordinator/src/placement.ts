/**
 * Where a job may run and what a failure does to it: the placement and
 * failure policy, in one place. The pure functions decide over plain data;
 * `Placement` reads what they need from the Store, applies their decisions
 * through it, and reports what happened (the node hub only logs and sends).
 *
 * - Capability matching: a node fits a job when it has the job's backend and
 *   at least its VRAM floor (`fits`; the scheduler's SQL uses `FITS_SQL`,
 *   the same rule, kept equal by placement.test.ts).
 * - A failure: the failing node never gets the job again, an out-of-memory
 *   failure raises the job's VRAM floor above the failing card, the job is
 *   retried with exponential backoff until `maxAttempts`, and a node failing
 *   `blocklistAfter` times in one sweep gets none of its jobs (`decideFailure`).
 * - Exclusions relax when the excluded nodes are the only capable ones online
 *   (a one-GPU farm); a sweep fails when no capable node is left; an OOM job
 *   fails when no known card is big enough.
 * - A running job is duplicated onto an idle node once it has run 3× its
 *   sweep's median render time (`isStraggler`).
 * - A node that cannot fetch a job's registry model (model_unavailable) is
 *   excluded for that job without the failure counting as an attempt, while
 *   another capable node may still fetch it (`modelUnavailable`).
 */
import type { NodeModelState } from './node-models.js';

/** What a node offers, as it registered. */
export interface NodeCaps {
  backends: string[];
  models: string[];
  vramMb: number;
}

export interface OnlineNode {
  nodeId: string;
  caps: NodeCaps;
  /** What it reported of its registry model cache (node-models.ts), if it has one. */
  models?: NodeModelState | undefined;
}

/** What a job needs from a node. */
export interface Need {
  backend: string;
  minVramMb: number;
}

export interface FailurePolicy {
  /** Leases per job before it hard-fails. */
  maxAttempts: number;
  /** Failures of one node within one sweep before it is blocklisted for that sweep. */
  blocklistAfter: number;
}

export interface Failure {
  error: string;
  logTail: string;
  outOfMemory: boolean;
}

export interface FailingNode {
  id: string;
  vramMb: number;
}

// ---------------------------------------------------------------- capability matching

export function hasBackend(caps: Pick<NodeCaps, 'backends'>, backend: string): boolean {
  return caps.backends.includes(backend);
}

export function hasVram(vramMb: number, minVramMb: number): boolean {
  return vramMb >= minVramMb;
}

/** A node can run a job: it has the backend and a card at least as big as the job's VRAM floor. */
export function fits(caps: Pick<NodeCaps, 'backends' | 'vramMb'>, need: Need): boolean {
  return hasBackend(caps, need.backend) && hasVram(caps.vramMb, need.minVramMb);
}

/**
 * `fits` in SQL, for the scheduler's queries: each builder takes the column
 * to test; the statement binds `fitsParams(caps)`.
 */
export const FITS_SQL = {
  backend: (column: string) => `${column} IN (SELECT value FROM json_each(@backends))`,
  vram: (column: string) => `${column} <= @vram`,
};

export function fitsParams(caps: Pick<NodeCaps, 'backends' | 'vramMb'>): { backends: string; vram: number } {
  return { backends: JSON.stringify(caps.backends), vram: caps.vramMb };
}

// ---------------------------------------------------------------- failures

export interface FailureDecision {
  /** The job leaves the queue for good. */
  final: boolean;
  /** Nodes the job never goes to again (the failing one added). */
  excluded: string[];
  minVramMb: number;
  /** When a retry may start (exponential backoff). */
  notBefore: number;
  error: string;
  /** The failing node gets none of this sweep's jobs from now on. */
  blocklist: boolean;
}

/**
 * What a failure on the job's holder does. `priorFailures` counts this node's
 * earlier failures in the sweep; `blocked` says whether it is blocklisted already.
 */
export function decideFailure(
  job: { attempts: number; min_vram_mb: number; excluded: readonly string[] },
  node: FailingNode,
  failure: Failure,
  sweep: { priorFailures: number; blocked: boolean },
  policy: FailurePolicy,
  now: number,
): FailureDecision {
  const excluded = new Set(job.excluded);
  excluded.add(node.id);
  return {
    final: job.attempts >= policy.maxAttempts,
    excluded: [...excluded],
    minVramMb: failure.outOfMemory ? Math.max(job.min_vram_mb, node.vramMb + 1) : job.min_vram_mb,
    notBefore: now + Math.min(60_000, 1_000 * 2 ** (job.attempts - 1)),
    error: failure.outOfMemory ? `out of memory on ${node.id} (${node.vramMb} MB): ${failure.error}` : failure.error,
    blocklist: !sweep.blocked && sweep.priorFailures + 1 >= policy.blocklistAfter,
  };
}

/** Capable online nodes: not blocklisted for the sweep, and fitting the need (or just having the backend). */
export function capableNodes(online: OnlineNode[], blocked: ReadonlySet<string>, need: Need | { backend: string }): OnlineNode[] {
  return online.filter((n) => !blocked.has(n.nodeId) && ('minVramMb' in need ? fits(n.caps, need) : hasBackend(n.caps, need.backend)));
}

/**
 * A job is kept away from nodes it failed on — unless those are the only
 * capable nodes online (a one-GPU farm): then it may retry there, and
 * maxAttempts and the blocklist still bound how often.
 */
export function shouldClearExclusions(excluded: ReadonlySet<string>, capable: OnlineNode[]): boolean {
  return capable.length > 0 && capable.every((n) => excluded.has(n.nodeId));
}

/** A sweep with blocklisted nodes fails once nodes are online and none of them may run it. */
export function noCapableNodeLeft(online: OnlineNode[], blocked: ReadonlySet<string>, backend: string): boolean {
  return blocked.size > 0 && online.length > 0 && capableNodes(online, blocked, { backend }).length === 0;
}

/** Why a group of queued jobs waits, in words, or undefined when some online node can take them. */
export function explainWait(group: Need & { n: number }, online: OnlineNode[], blocked: ReadonlySet<string>): string | undefined {
  if (capableNodes(online, blocked, group).length) return undefined;
  const gb = Math.round((group.minVramMb / 1024) * 10) / 10;
  const usable = blocked.size ? 'usable ' : '';
  const listed = blocked.size ? ` (blocklisted for this sweep: ${[...blocked].join(', ')})` : '';
  // No floor (upscales): the backend alone is what is missing.
  const need = group.minVramMb > 0 ? `with ≥ ${gb} GB VRAM and backend ${group.backend}` : `with backend ${group.backend}`;
  return `${group.n} job(s) wait: no ${usable}node ${need}${listed}${BACKEND_HINTS[group.backend] ?? ''}`;
}

/** How a node comes to offer a backend, where that is a setting rather than a program. */
const BACKEND_HINTS: Record<string, string> = {
  upscale: ': a node runs upscales when its config (NIGHTSHIFT_NODE_CONFIG) sets upscale.model',
  onnx: ': a node runs onnx when its config (NIGHTSHIFT_NODE_CONFIG) has an onnx section',
};

/**
 * Why a sweep's queued jobs wait for their registry model, in words, or
 * undefined: they wait when no online node holds the model yet and some are
 * downloading it (progress named), so no render can start before a download ends.
 */
export function explainModelWait(model: { name: string; hash: string }, queued: number, online: OnlineNode[]): string | undefined {
  if (!queued || online.some((n) => n.models && (n.models.loaded === model.hash || n.models.cached.includes(model.hash)))) return undefined;
  const downloads = online.flatMap((n) => (n.models?.downloads ?? []).filter((d) => d.hash === model.hash).map((d) => ({ node: n.nodeId, ...d })));
  if (!downloads.length) return undefined;
  const mb = (b: number) => (b / 1024 ** 2).toFixed(1);
  const where = downloads.map((d) => `${d.node} ${mb(d.bytesDone)}/${mb(d.bytesTotal)} MB`).join(', ');
  return `${queued} job(s) wait for model ${model.name} (${model.hash.slice(0, 12)}) to download: ${where}`;
}

/** A job is a straggler once it has run 3× the median of its sweep's recent render times. */
export function isStraggler(runningMs: number, recentRenderMs: number[]): boolean {
  const sorted = [...recentRenderMs].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
  return runningMs >= 3 * median;
}

// ---------------------------------------------------------------- applied through the Store

interface PlacedJob {
  id: string;
  sweep_id: string;
  state: string;
  attempts: number;
  min_vram_mb: number;
  started_at: number | null;
}

/**
 * The store reads and writes placement uses: the StoreEngine's, so placement
 * works the same on SQLite and on PostgreSQL with several replicas
 * (structural, so tests may stub them).
 */
export interface PlacementStore {
  failJob(jobId: string, node: FailingNode, failure: Failure): Promise<{ job: PlacedJob; blocklisted: boolean } | undefined>;
  getJob(jobId: string): Promise<PlacedJob | undefined>;
  getSweep(sweepId: string): Promise<{ backend: string; model?: string; model_hash?: string | null } | undefined>;
  exclusions(jobId: string): Promise<string[]>;
  /** A model_unavailable failure that does not count (store/jobs.ts returnUnfetched). */
  returnUnfetched(jobId: string, nodeId: string, error: string): Promise<unknown>;
  blockedNodes(sweepId: string): Promise<string[]>;
  /** Only queued jobs that have exclusions: never a scan of the whole queue (this runs every tick). */
  queuedWithExclusions(limit: number): Promise<{ id: string; sweep_id: string; backend: string; min_vram_mb: number; excluded: string[] }[]>;
  clearExclusions(jobId: string): Promise<void>;
  queuedRequirements(sweepId: string, floors?: readonly number[]): Promise<{ backend: string; min_vram_mb: number; n: number }[]>;
  /** The distinct floors alone: nothing counted (a count reads every queued entry of its floor). */
  queuedFloors(sweepId: string): Promise<{ backend: string; min_vram_mb: number }[]>;
  counts(sweepId: string): Promise<{ queued: number }>;
  failQueued(sweepId: string, reason: string): Promise<number>;
  failQueuedJob(jobId: string, reason: string): Promise<void>;
  /** Every node ever registered (VRAM from its capabilities). */
  nodes: { listNodes(): Promise<{ capabilities_json: string }[]> };
  recentFinishes(sweepId: string, limit: number): Promise<{ render_ms: number | null }[]>;
}

/** Queued jobs with exclusions looked at per tick (the oldest first). */
const RELAX_BATCH = 1_000;

export interface FailureOutcome {
  /** The job as the failure left it (before the checks below). */
  job: PlacedJob;
  blocklisted: boolean;
  /** Set when the sweep failed because no capable node is left: how many queued jobs that failed. */
  noCapableNode: number | undefined;
  /** The job failed for good: no known card has the VRAM it needs. */
  tooBigForEveryCard: boolean;
}

export class Placement {
  constructor(
    private readonly store: PlacementStore,
    /**
     * Nodes connected now, with what they offer: farm-wide (with several
     * replicas, every replica's nodes; a sweep must not fail for want of a
     * capable node that is connected to another replica).
     */
    private readonly online: () => OnlineNode[] | Promise<OnlineNode[]>,
  ) {}

  /** Records a node's failure of a job and applies what follows from it. */
  async recordFailure(jobId: string, node: FailingNode, failure: Failure): Promise<FailureOutcome | undefined> {
    const r = await this.store.failJob(jobId, node, failure);
    if (!r) return undefined;
    // Checked after every failure, not just at the blocklisting: jobs that were in flight then come back later.
    const noCapableNode = await this.failIfNoCapableNode(r.job.sweep_id);
    const job = (await this.store.getJob(jobId)) ?? r.job;
    const tooBig = failure.outOfMemory && job.state === 'queued' && !(await this.knownCards()).some((vram) => hasVram(vram, job.min_vram_mb));
    if (tooBig) await this.store.failQueuedJob(job.id, `out of memory on every node: needs more than ${job.min_vram_mb - 1} MB VRAM`);
    return { job: r.job, blocklisted: r.blocklisted, noCapableNode, tooBigForEveryCard: tooBig };
  }

  /** Clears the exclusions of queued jobs whose excluded nodes are the only capable ones online; returns how many. */
  async relaxExclusions(): Promise<number> {
    const rows = await this.store.queuedWithExclusions(RELAX_BATCH);
    if (!rows.length) return 0;
    const online = await this.online();
    const blocked = this.blockedBySweep();
    let cleared = 0;
    for (const row of rows) {
      const capable = capableNodes(online, await blocked(row.sweep_id), { backend: row.backend, minVramMb: row.min_vram_mb });
      if (shouldClearExclusions(new Set(row.excluded), capable)) {
        await this.store.clearExclusions(row.id);
        cleared++;
      }
    }
    return cleared;
  }

  /**
   * A node could not fetch the job's registry model. While another capable
   * online node may still fetch it, the node is excluded for the job and the
   * lease does not count as an attempt; once none is left it is an ordinary
   * failure (attempts, backoff), so a model no node can fetch ends the job
   * instead of cycling through the nodes forever. Returns whether it counted.
   */
  async modelUnavailable(jobId: string, node: FailingNode, failure: Failure): Promise<{ counted: false } | { counted: true; outcome: FailureOutcome | undefined }> {
    const job = await this.store.getJob(jobId);
    const sweep = job && (await this.store.getSweep(job.sweep_id));
    if (job && sweep) {
      const excluded = new Set([...(await this.store.exclusions(jobId)), node.id]);
      const blocked = new Set(await this.store.blockedNodes(job.sweep_id));
      const others = capableNodes(await this.online(), blocked, { backend: sweep.backend, minVramMb: job.min_vram_mb }).filter((n) => !excluded.has(n.nodeId));
      if (others.length) {
        await this.store.returnUnfetched(jobId, node.id, `model unavailable on ${node.id}: ${failure.error}`);
        return { counted: false };
      }
    }
    return { counted: true, outcome: await this.recordFailure(jobId, node, failure) };
  }

  /** Which queued work no online node can take, or waits for a model download, in words (GET /api/sweeps/:id). */
  async explain(sweepId: string): Promise<string[]> {
    const blocked = new Set(await this.store.blockedNodes(sweepId));
    const online = await this.online();
    // Only the groups no online node can take are worth a line, and only those are counted: the page stays
    // cheap with 100,000 jobs queued (counting every floor read them all on each view).
    const floors = await this.store.queuedFloors(sweepId);
    const waiting = floors.filter((f) => explainWait({ backend: f.backend, minVramMb: f.min_vram_mb, n: 1 }, online, blocked) !== undefined).map((f) => f.min_vram_mb);
    const groups = waiting.length ? await this.store.queuedRequirements(sweepId, waiting) : [];
    const lines = groups.map((g) => explainWait({ backend: g.backend, minVramMb: g.min_vram_mb, n: g.n }, online, blocked));
    const sweep = await this.store.getSweep(sweepId);
    if (sweep?.model_hash) {
      const { queued } = await this.store.counts(sweepId);
      lines.push(explainModelWait({ name: sweep.model ?? sweep.model_hash, hash: sweep.model_hash }, queued, online.filter((n) => !blocked.has(n.nodeId))));
    }
    return lines.filter((line): line is string => line !== undefined);
  }

  /** Whether a running job has run long enough to be copied onto an idle node. */
  async worthCopying(jobId: string, now: number): Promise<boolean> {
    const job = await this.store.getJob(jobId);
    if (!job) return false;
    const times = (await this.store.recentFinishes(job.sweep_id, 50)).map((f) => f.render_ms ?? 0);
    return isStraggler(now - (job.started_at ?? now), times);
  }

  /** A sweep fails only when no online capable node is left for it (all blocklisted); returns the jobs failed then. */
  private async failIfNoCapableNode(sweepId: string): Promise<number | undefined> {
    const sweep = await this.store.getSweep(sweepId);
    if (!sweep) return undefined;
    const blocked = new Set(await this.store.blockedNodes(sweepId));
    if (!noCapableNodeLeft(await this.online(), blocked, sweep.backend)) return undefined;
    return await this.store.failQueued(sweepId, `no capable node left: every node with backend ${sweep.backend} is blocklisted for this sweep`);
  }

  private async knownCards(): Promise<number[]> {
    return (await this.store.nodes.listNodes()).map((n) => Number((JSON.parse(n.capabilities_json) as { vramMb?: number }).vramMb ?? 0));
  }

  private blockedBySweep(): (sweepId: string) => Promise<ReadonlySet<string>> {
    const cache = new Map<string, ReadonlySet<string>>();
    return async (sweepId) => {
      let blocked = cache.get(sweepId);
      if (!blocked) cache.set(sweepId, (blocked = new Set(await this.store.blockedNodes(sweepId))));
      return blocked;
    };
  }
}
