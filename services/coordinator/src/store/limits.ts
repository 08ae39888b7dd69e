/** Limits checked inside a write's own transaction, so requests through two replicas cannot both pass them: the daily quota (createSweep), the webhook and share-link caps. */

export interface SweepQuota {
  imagesPerDay: number;
  since: number;
}

/** A sweep refused inside its transaction: it would pass its owner's daily quota (nothing of it is stored). */
export class QuotaRaced extends Error {
  constructor(
    readonly usedBefore: number,
    readonly wanted: number,
    readonly quota: SweepQuota,
  ) {
    super(`daily image quota exceeded: ${wanted} image(s) wanted, ${Math.max(0, quota.imagesPerDay - usedBefore)} of ${quota.imagesPerDay} left`);
  }
}

/** A row refused inside its transaction: the cap it is counted against is reached (nothing is stored). */
export class CapReached extends Error {
  constructor(
    readonly what: string,
    readonly max: number,
  ) {
    super(`at most ${max} ${what}`);
  }
}
