/** A daily quota checked in a sweep's own transaction (both engines' createSweep; quota.ts checks it first, outside). */

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
