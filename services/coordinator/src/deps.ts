/**
 * What each of the coordinator's handlers uses, named by its consumer
 * (Flamenco style): each is a small `Pick<>` of the real parts, so a test
 * builds exactly what it needs, no casts. `CoordinatorDeps` is the full set
 * app.ts wires; it satisfies every one of them. The node hub names its own
 * (`HubDeps`, node-hub.ts), as the dashboard does (`DashboardDeps`).
 */
import type { Config, LimitsConfig, Logger, Ops, Storage } from '@nightshift/common';
import type { CostEngine, ListingEngine, NodeEngine, PeopleEngine, StoreEngine } from './store-engine/engine.js';
import type { NodeHub } from './node-hub.js';
import type { Live } from './live.js';
import type { Placement } from './placement.js';
import type { DashboardDeps } from './dashboard/index.js';
import type { GuardConfig } from './request-guard.js';
import type { WildcardBucket } from './wildcards-store.js';
import type { WebhookRouteDeps } from './webhooks-routes.js';
import type { QuotaEngine } from './quota.js';
import type { KeyRouteDeps } from './keys-routes.js';
import type { CallerEngine } from './callers.js';
import type { OwnedImageEngine } from './owned-images.js';
import type { WildcardOwnerEngine } from './wildcard-owners.js';
import type { AlbumDeps } from './albums.js';
import type { SharePageDeps } from './shares-public.js';

/** The sweep operations (sweeps.ts), shared by HTTP and gRPC. */
export interface SweepDeps {
  config: LimitsConfig & Pick<Config, 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_INDEXER_URL'>;
  log: Pick<Logger, 'info'>;
  engine: Pick<StoreEngine, 'createSweep' | 'getSweep' | 'counts' | 'recentFinishes' | 'cancelSweep' | 'setPaused' | 'setPriority' | 'unbatched'> & { listings: Pick<ListingEngine, 'jobs' | 'renderedJob'> } & QuotaEngine;
  /** New work is offered to the nodes at once; a cancelled sweep's jobs are stopped on them. */
  hub: Pick<NodeHub, 'dispatch' | 'cancelJobs'>;
}

/** SweepService over gRPC (sweep-grpc.ts). */
export interface GrpcDeps extends SweepDeps {
  engine: SweepDeps['engine'] &
    CallerEngine & { listings: Pick<ListingEngine, 'listSweeps'>; nodes: Pick<NodeEngine, 'listNodes'>; people: Pick<PeopleEngine, 'wildcardOwner'>; costs: Pick<CostEngine, 'sweepSums'> };
  /** The bucket's client, when there is one, holds the wildcard lists a spec uses. */
  storage?: Partial<WildcardBucket>;
  live: Pick<Live, 'subscribe' | 'onClose'>;
}

/** The HTTP API (http.ts), dashboard included. */
export interface HttpDeps extends SweepDeps, DashboardDeps {
  config: SweepDeps['config'] & DashboardDeps['config'] & GuardConfig & WebhookRouteDeps['config'] & Pick<Config, 'NIGHTSHIFT_ENERGY_PRICE' | 'NIGHTSHIFT_DATA_DIR'>;
  log: SweepDeps['log'] & DashboardDeps['log'] & Pick<Logger, 'error'>;
  /** Signs share links (the same on every replica); absent: the one in NIGHTSHIFT_DATA_DIR (shares-token.ts). */
  shareSecret?: Buffer;
  engine: SweepDeps['engine'] &
    DashboardDeps['engine'] &
    WebhookRouteDeps['engine'] &
    KeyRouteDeps['engine'] &
    AlbumDeps['engine'] &
    SharePageDeps['engine'] &
    CallerEngine &
    OwnedImageEngine &
    WildcardOwnerEngine &
    Pick<StoreEngine, 'blockedNodes' | 'leasedTo'> & { listings: Pick<ListingEngine, 'listSweeps' | 'sweepCount'>; nodes: Pick<NodeEngine, 'listNodes'>; costs: Pick<CostEngine, 'sweepSums'> };
  hub: SweepDeps['hub'] & Pick<NodeHub, 'connectedNodeIds'> & Partial<Pick<NodeHub, 'sleepOf' | 'setPaused' | 'models'>>;
  /** Why a sweep waits; a promise once placement reads through the engine. */
  placement: { explain(sweepId: string): string[] | Promise<string[]> };
  live: Pick<Live, 'subscribe' | 'onClose'>;
  /** The bucket's client, when there is one, holds the wildcard lists (wildcards-store.ts). */
  storage: Pick<Storage, 'get'> & Partial<WildcardBucket>;
  /** /metrics and /readyz (absent in handler unit tests). */
  ops?: Ops;
}

/** Everything app.ts wires together. */
export interface CoordinatorDeps {
  config: Config;
  log: Logger;
  /** The store: SQLite in the data folder, or PostgreSQL shared by replicas (open-engine.ts). */
  engine: StoreEngine;
  /** Signs share links; the same on every replica. */
  shareSecret: Buffer;
  hub: NodeHub;
  placement: Placement;
  live: Live;
  storage: Storage;
  ops?: Ops;
}
