/**
 * The JSON the dashboard reads, as it reads it: the coordinator's /api routes
 * (http.ts, dashboard/index.ts) and the indexer's search it proxies. Only the
 * fields the client uses are listed. ../../client-contract.ts holds these
 * against the server's own types, so renaming a field on either side fails
 * the type-check instead of a page. No DOM types here: the server's
 * type-check reads this file too.
 */

export type SweepStatus = 'queued' | 'running' | 'paused' | 'done' | 'failed' | 'cancelled';
export type JobState = 'queued' | 'leased' | 'done' | 'skipped' | 'failed' | 'cancelled';

export interface SweepCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

/** A sweep as GET /api/sweeps lists it, the actions return it and `sweep` events carry it. */
export interface Sweep {
  id: string;
  name: string;
  kind: string;
  status: SweepStatus;
  priority: number;
  backend: string;
  total: number;
  counts: SweepCounts;
  rate: number | null;
  etaSeconds: number | null;
}

export interface FailedJob {
  prompt: string;
  seed: number;
  error: string | null;
  logTail: string | null;
}

/** GET /api/sweeps/:id: the sweep, its spec, the first failures and why queued jobs wait. */
export interface SweepDetail extends Sweep {
  spec: SpecDraft;
  failedJobs: FailedJob[];
  explain: string[];
  /** What it cost so far (absent from older coordinators). */
  cost?: SweepCost;
}

/** GPU hours, measured kWh and their cost (null: not measured, or no price set). */
export interface CostFigures {
  renders: number;
  gpuHours: number;
  measuredRenders: number;
  kWh: number | null;
  cost: number | null;
}

export interface SweepCost extends CostFigures {
  energy: 'measured' | 'partial' | 'not measured';
  pricePerKwh: number | null;
  nodes: (CostFigures & { nodeId: string; name: string; gpuName: string; driverVersion: string })[];
}

/** One job of GET /api/sweeps/:id/jobs. */
export interface Job {
  id: string;
  index: number;
  state: JobState;
  prompt: string;
  seed: number;
  axes: Record<string, string | number>;
  renderKey: string;
  error: string | null;
  thumbUrl: string | null;
}

/** A sweep spec as the form builds it and as a pasted spec comes back from the preview. */
export interface SpecDraft {
  name?: string;
  prompts?: string[];
  axes?: Record<string, (string | number | boolean)[]>;
  zip?: string[];
  template?: string;
  seeds?: number[] | { start?: number; count?: number | undefined };
  params?: Record<string, unknown>;
  backend?: string;
  model?: string;
  priority?: number;
}

/** POST /api/sweeps/preview. */
export interface SpecPreview {
  jobs: number;
  prompts: number;
  seeds: number;
  samples: { prompt: string }[];
  input: SpecDraft;
}

/** POST /api/remix: a spec read from an image's metadata; `issues` when it needs editing before it can be submitted. */
export interface RemixAnswer {
  spec: SpecDraft;
  source: 'nightshift' | 'a1111' | 'comfyui' | 'invokeai';
  notes: string[];
  issues?: SpecIssue[];
}

/** A field error of a 400 answer: `path` is the spec's field path ("params.width"). */
export interface SpecIssue {
  path: string;
  message: string;
}

/** The body of an API error answer. */
export interface ErrorBody {
  error: string;
  details?: SpecIssue[];
}

/** POST /api/sweeps and POST /api/upscale. */
export interface Submitted {
  id: string;
  jobs: number;
}

/** One image of GET /api/gallery. */
export interface GalleryImage {
  /** The image's object key (images/<renderKey>.png). */
  key: string;
  renderKey: string;
  thumbUrl: string;
  prompt: string;
  seed: number;
  /** null: the indexer (where favorites live) did not answer. */
  favorite: boolean | null;
}

/** GET /api/gallery. `favorites` is "ok" or why favorites are unknown. */
export interface GalleryPage {
  total: number;
  images: GalleryImage[];
  favorites?: string | undefined;
}

/** GET /api/gallery/:key. */
export interface ImageDetail extends GalleryImage {
  url: string;
  sweepId: string;
  sweepName: string;
  params: Record<string, unknown>;
  backend: string;
  model: string;
  node: string | null;
  renderMs: number | null;
  finishedAt: string | null;
  nextSeed: number;
}

/** One hit of the indexer's GET /api/search (proxied by the coordinator). */
export interface SearchResult extends GalleryImage {
  score: number;
}

export interface SearchPage {
  results: SearchResult[];
}

/** One image of a BestPage; `aesthetic`: the aesthetic head's score beside the taste model's, when a head is configured. */
export type BestResult = GalleryImage & { score: number; favorite: boolean; url: string; sweepId: string; aesthetic?: number };

/**
 * GET /api/sweeps/:id/best and GET /api/best (the indexer's, proxied): ranked
 * by the taste model, or below 10 favorites by the aesthetic head when one is
 * configured; with neither, 409.
 */
export type BestPage =
  | { results: BestResult[]; scoredBy: 'taste'; model: { positives: number; negatives: number; cvAuc: number | null } }
  | { results: BestResult[]; scoredBy: 'aesthetic'; aesthetic: { head: string }; taste: { favorites: number; needed: number } };

/** The capabilities a gpu-node registered with (all optional: older nodes send fewer). */
export interface NodeCapabilities {
  gpuName?: string;
  vramMb?: number;
  backends?: string[];
  models?: string[];
  slots?: number;
  /** The onnxruntime execution provider its onnx backend runs on ("cuda" or "cpu"); absent without one. */
  executionProvider?: string;
}

/** One node of GET /api/nodes. */
export interface FarmNode {
  id: string;
  name: string;
  status: 'online' | 'offline';
  capabilities: NodeCapabilities;
  lastSeen: string;
  jobsDone: number;
  currentJobs: string[];
  /** Online but taking no work (its schedule, its GPU in use, a pause by hand); null when it works. */
  sleeping?: { reason: string; until: string | null; untilLocal: string; label: string } | null;
  /** Its registry model cache as last reported (null: none reported). */
  models?: NodeModelCache | null;
}

/** A node's registry model cache (GET /api/nodes `models`). */
export interface NodeModelCache {
  /** Content hashes downloaded and verified. */
  cached: string[];
  /** The hash loaded now; '' when none. */
  loaded: string;
  downloads: { hash: string; name: string; bytesDone: number; bytesTotal: number }[];
  /** Measured download rate; 0 until measured. */
  bytesPerS: number;
}

/** Server-Sent Events of GET /api/events, by event name. */
export interface LiveEvents {
  sweep: { sweepId: string; sweep?: Sweep | undefined };
  /** `state` is a JobState; the server types it as any string. */
  job: { sweepId: string; jobId: string; state: string };
  progress: { sweepId: string; jobId: string; step: number; total: number; preview?: string };
  node: { nodeId: string; status: string };
}
