/**
 * The StoreEngine's faces beyond the job lifecycle: nodes, webhooks, the
 * listings the HTTP API and dashboard read, people (users, keys, wildcard
 * owners, quotas) and retention. Each is the sync Store's own methods, same
 * names and arguments, made async (`Async<Pick<Store, …>>`), so switching a
 * call site from the Store is `store.x(` → `await engine.<face>.x(`, and the
 * compiler keeps both engines' signatures equal to the Store's.
 */
import type { Store } from '../store.js';
import type { DueDelivery } from '../store/webhooks.js';

/** Store methods `K`, each returning a promise of what the Store returns. */
export type Async<S, K extends keyof S> = {
  [P in K]: S[P] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** Nodes and node tokens (store/nodes.ts, node-enrolment.ts). */
export const NODE_METHODS = [
  'upsertNode',
  'touchNode',
  'setNodeStatus',
  'listNodes',
  'markAllNodesOffline',
  'nodeTokenBinding',
  'bindNodeToken',
  'recordNodeEvent',
  'markNodeDown',
] as const;
/**
 * On PostgreSQL `markAllNodesOffline` (run at a replica's start) marks only
 * the nodes whose replica is gone (no session of it left): nodes connected
 * to the replicas still running stay online.
 */
export type NodeEngine = Async<Store, (typeof NODE_METHODS)[number]>;

/** Webhooks and their deliveries (store/webhooks.ts); deliveries are written with their outbox event, in its transaction. */
export const WEBHOOK_METHODS = [
  'createWebhook',
  'getWebhook',
  'listWebhooks',
  'deleteWebhook',
  'webhookDeliveries',
  'deliveryAttempts',
  'dueDeliveries',
  'nextDeliveryAt',
  'recordAttempt',
  'pruneDeliveries',
] as const;
export type WebhookEngine = Async<Store, (typeof WEBHOOK_METHODS)[number]> & {
  /**
   * Due pending deliveries, as `dueDeliveries`, each claimed until `now + claimMs`:
   * a concurrent claimer (another replica) gets others; `recordAttempt` ends the
   * claim, and one that lapses (its sender died) is handed out again.
   */
  claimDeliveries(now: number, limit: number, claimMs: number): Promise<DueDelivery[]>;
};

/** What the HTTP API, the dashboard and the image checks read: sweep pages, a sweep's jobs, rendered images, result audits. */
export const LISTING_METHODS = ['listSweeps', 'sweepCount', 'jobs', 'renderedJob', 'results', 'imageOwnedBy', 'pendingEvents'] as const;
export type ListingEngine = Async<Store, (typeof LISTING_METHODS)[number]>;

/** People beyond keys (store/users.ts): who is active, the admins, quotas, wildcard list owners. */
export const PEOPLE_METHODS = [
  'hasActiveKeys',
  'listUsers',
  'activeAdmins',
  'activeUser',
  'imagesSubmittedSince',
  'wildcardOwner',
  'setWildcardOwner',
  'forgetWildcardOwner',
  'wildcardsOf',
] as const;
export type PeopleEngine = Async<Store, (typeof PEOPLE_METHODS)[number]>;

/** Deleting old rows in small batches (retention.ts); webhook deliveries are `webhooks.pruneDeliveries`, shares `shares.pruneExpired`. */
export const RETENTION_METHODS = ['pruneOutbox', 'pruneResults'] as const;
export type RetentionEngine = Async<Store, (typeof RETENTION_METHODS)[number]>;

/**
 * The Store's methods `keys`, bound to it and made async (the SQLite engine's
 * faces). `writes`: the face writes, so an unbatched caller settles the open
 * turn first (StoreBase.settleForCaller); a read-only face does not, or every
 * dashboard read would commit the node hub's turn.
 */
export function asyncFace<K extends keyof Store>(store: Store, keys: readonly K[], writes = true): Async<Store, K> {
  const face: Partial<Record<K, (...args: unknown[]) => Promise<unknown>>> = {};
  for (const key of keys) {
    const method = store[key] as unknown as (...args: unknown[]) => unknown;
    face[key] = async (...args: unknown[]) => {
      if (writes) store.settleForCaller();
      return method.apply(store, args);
    };
  }
  return face as unknown as Async<Store, K>;
}
