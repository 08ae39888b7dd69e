// @ts-check
// Who this browser is on the farm (GET /api/me, issue 16): the user's name,
// "admin", and what is left of a daily image quota, in the page header.
import { request } from './request.js';

/**
 * The answer of GET /api/me (keys-routes.ts meRoute).
 * @typedef {{ user: string, admin: boolean, quota: { imagesPerDay: number, usedToday: number, leftToday: number, resetsAt: string } | null }} Me
 */

/** Fills #whoami; a farm without users (the local admin alone) shows nothing. */
export async function showWhoami() {
  const el = document.querySelector('#whoami');
  if (!(el instanceof HTMLElement)) return;
  /** @type {Me} */
  const me = await request('/api/me');
  if (me.user === 'local' && me.admin && !me.quota) return;
  const quota = me.quota ? ` · ${me.quota.leftToday.toLocaleString()} of ${me.quota.imagesPerDay.toLocaleString()} images left today` : '';
  el.textContent = `${me.user}${me.admin ? ' (admin)' : ''}${quota}`;
  el.title = me.quota ? `The quota resets at ${new Date(me.quota.resetsAt).toLocaleTimeString()}` : '';
  el.hidden = false;
}
