/** What the node hub (node-hub.ts) is built from: its dependencies, by what it calls, its options and its metrics hooks. */
import type { Logger, Storage } from '@nightshift/common';
import type { CostEngine, ModelHolderEngine, NodeEngine, StoreEngine } from './store-engine/engine.js';
import type { Placement } from './placement.js';
import type { Live } from './live.js';
import type { PreviewStore } from './previews.js';
import type { NodeTokens } from './node-tokens.js';
import type { Refusal } from './store/completion.js';
import type { NodeModels } from './node-models.js';

/**
 * The store as the hub uses it: the StoreEngine's, so one hub code runs on
 * SQLite and on PostgreSQL beside other replicas. Every call is its own
 * transaction, committed when it resolves: what the hub sends a node after
 * awaiting it can no longer be undone by a crash.
 */
export type HubEngine = Pick<
  StoreEngine,
  | 'heldCount' | 'leaseNext' | 'leaseCopy' | 'straggler' | 'anyStraggler' | 'getJob' | 'expireLeases' | 'settleIdleSweeps' | 'endSweepsStoredShort' | 'renewLeases' | 'heartbeat' | 'afterCommit' | 'committed' | 'batched' | 'isTransient' | 'completeJob' | 'leasedTo' | 'requeue' | 'dropCopy'
  | 'markNodeDownIfOurs' | 'markNodeOfflineIfOurs'
> & {
  nodes: Pick<NodeEngine, 'touchNode' | 'upsertNode' | 'recordNodeEvent' | 'nodeTokenBinding' | 'bindNodeToken'>;
  costs: Pick<CostEngine, 'record'>;
  modelHolders: ModelHolderEngine;
};

/** What the hub uses, so tests can give it stand-ins. */
export interface HubDeps {
  engine: HubEngine;
  /** Where nodes upload: a reported image must be there before its job is done. */
  storage: Pick<Storage, 'exists'>;
  /** Without modelUnavailable a model_unavailable failure counts like any other. */
  placement: Pick<Placement, 'relaxExclusions' | 'recordFailure' | 'worthCopying'> & Partial<Pick<Placement, 'modelUnavailable'>>;
  /** Render progress only: state changes reach live clients through the Store's commit hook. */
  live: Pick<Live, 'emit'>;
  log: Logger;
  previews?: Pick<PreviewStore, 'offer'> | undefined;
  /** Each node's registry model cache as reported (the dashboard shows it); the hub makes its own when absent. */
  models?: NodeModels | undefined;
}

/** Hooks for the metrics (metrics.ts); every one optional. */
export interface HubObserver {
  leased?(count: number): void;
  completed?(renderMs: number, skipped: boolean): void;
  nodeDown?(requeued: number): void;
  refused?(reason: string): void;
  /** A result report refused: not the node's job, not its keys, or the image is not stored. */
  resultRefused?(reason: Refusal['reason']): void;
}

export interface HubOptions {
  leaseMs: number;
  heartbeatMs: number;
  /** A node silent for this long is marked down and its jobs requeued. */
  nodeTimeoutMs: number;
  /** Jobs queued on a node per render slot, so its GPU never waits for dispatch. */
  prefetchPerSlot: number;
  /** A job may be duplicated onto an idle node once it has run this long (and 3× the sweep's median). */
  stragglerMinMs: number;
  nodeToken?: string | undefined;
  /** Enrolled node tokens (node-tokens.ts); defaults to nodeToken alone. */
  tokens?: NodeTokens | undefined;
  observer?: HubObserver | undefined;
  /** Storage HEADs per reported image before it counts as missing (backoff up to 5 s between them). */
  storageAttempts?: number | undefined;
  /** How often a tick looks for sweeps left open with every job ended (engine.settleIdleSweeps); 5 s unless told. */
  settleIdleEveryMs?: number | undefined;
}
