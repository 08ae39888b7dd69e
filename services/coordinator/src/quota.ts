/**
 * Daily image quotas (issue 16): a user's submissions count against
 * `quota_images` per UTC day (the jobs of every sweep and upscale batch they
 * submitted since 00:00 UTC). A submission that would pass it is refused
 * whole with 429, naming the quota and what is left.
 */
import { QuotaRaced, type PeopleEngine, type StoreEngine, type SweepQuota } from './store-engine/engine.js';
import { utcDayStart } from './store/users.js';

export interface QuotaView {
  imagesPerDay: number;
  usedToday: number;
  leftToday: number;
  resetsAt: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export type QuotaEngine = Pick<StoreEngine, 'getUser'> & { people: Pick<PeopleEngine, 'imagesSubmittedSince'> };

/** The user's quota as of `now`, or null when they have none. */
export async function quotaOf(engine: QuotaEngine, user: string, now: number): Promise<QuotaView | null> {
  const quota = (await engine.getUser(user))?.quota_images ?? null;
  if (quota === null) return null;
  const day = utcDayStart(now);
  const used = await engine.people.imagesSubmittedSince(user, day);
  return { imagesPerDay: quota, usedToday: used, leftToday: Math.max(0, quota - used), resetsAt: new Date(day + DAY_MS).toISOString() };
}

/** Thrown when a submission would pass its user's daily quota (HTTP 429). */
export class QuotaExceeded extends Error {
  constructor(
    readonly quota: QuotaView,
    readonly wanted: number,
  ) {
    super(
      `daily image quota exceeded: this submission has ${wanted} image(s) but ${quota.leftToday} of the quota of ${quota.imagesPerDay} a day are left ` +
        `(${quota.usedToday} used today; it resets at ${quota.resetsAt})`,
    );
  }
}

/**
 * Throws QuotaExceeded when `wanted` more images would pass the user's quota
 * today, before anything is stored. Returns what the sweep's own transaction
 * checks again (`NewSweep.quota`), so two submissions of one user at the same
 * moment, through one replica or two, cannot both pass it; none without a quota.
 */
export async function checkQuota(engine: QuotaEngine, user: string, wanted: number, now: number): Promise<SweepQuota | undefined> {
  const q = await quotaOf(engine, user, now);
  if (!q) return undefined;
  if (wanted > q.leftToday) throw new QuotaExceeded(q, wanted);
  return { imagesPerDay: q.imagesPerDay, since: utcDayStart(now) };
}

/** Runs a quota-bound createSweep; a refusal inside its transaction (another submission got there first) becomes QuotaExceeded. */
export async function withinQuota<T>(engine: QuotaEngine, user: string, store: () => Promise<T>): Promise<T> {
  try {
    return await store();
  } catch (err) {
    if (!(err instanceof QuotaRaced)) throw err;
    const q = await quotaOf(engine, user, err.quota.since);
    throw new QuotaExceeded(q ?? { imagesPerDay: err.quota.imagesPerDay, usedToday: err.usedBefore, leftToday: Math.max(0, err.quota.imagesPerDay - err.usedBefore), resetsAt: new Date(err.quota.since + DAY_MS).toISOString() }, err.wanted);
  }
}
