/**
 * The SQLite engine's webhooks face: the Store's own methods, plus claims on
 * due deliveries as PostgreSQL makes them (postgres-webhooks.ts). One process
 * owns the file, so a claim is kept in that process (delivery id → when it
 * lapses), shared by every engine over the Store, as outbox claims are.
 */
import type { Store } from '../store.js';
import type { DueDelivery } from '../store/webhooks.js';
import { WEBHOOK_METHODS, asyncFace, type WebhookEngine } from './engine-faces.js';

export function sqliteWebhooks(store: Store, claims: Map<number, number>): WebhookEngine {
  const face = asyncFace(store, WEBHOOK_METHODS);
  return {
    ...face,
    async claimDeliveries(now: number, limit: number, claimMs: number): Promise<DueDelivery[]> {
      for (const [id, until] of claims) if (until <= now) claims.delete(id);
      // Read past the claimed ones (they are due too), then claim, with no await in between: no other claimer runs meanwhile.
      const rows = store.dueDeliveries(now, limit + claims.size).filter((d) => !claims.has(d.id)).slice(0, limit);
      for (const d of rows) claims.set(d.id, now + claimMs);
      return rows;
    },
    async recordAttempt(deliveryId, outcome) {
      store.recordAttempt(deliveryId, outcome);
      claims.delete(deliveryId);
    },
  };
}
