/**
 * Image access for the dashboard when an API token is configured.
 *
 * `fetch` can send `Authorization: Bearer`, but `<img src>` cannot, and the
 * token must never appear in a URL (it would land in logs and history). So
 * the dashboard trades the bearer token (sent as a header) for a short-lived
 * cookie that only opens image bytes: HttpOnly (scripts cannot read it),
 * SameSite=Strict, Path=/ui/files (sent nowhere else), and an HMAC over its
 * expiry keyed from the API token, so changing the token revokes every cookie
 * and a coordinator restart does not. The cookie never authorises the API.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const FILES_COOKIE = 'nightshift_files';
export const FILES_PATH = '/ui/files';
export const SESSION_TTL_S = 60 * 60;

function keyFor(token: string): Buffer {
  return createHash('sha256').update('nightshift dashboard files cookie\0').update(token).digest();
}

function sign(token: string, payload: string): string {
  return createHmac('sha256', keyFor(token)).update(payload).digest('base64url');
}

/** A cookie value valid until `expiresAtMs`: `v1.<expiry>.<mac>`. */
export function issueFilesCookie(token: string, expiresAtMs: number): string {
  const payload = `v1.${Math.floor(expiresAtMs)}`;
  return `${payload}.${sign(token, payload)}`;
}

export function verifyFilesCookie(token: string, value: string | undefined, nowMs = Date.now()): boolean {
  if (!value) return false;
  const m = /^(v1\.(\d{1,15}))\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m) return false;
  if (Number(m[2]) <= nowMs) return false;
  const want = Buffer.from(sign(token, m[1]!));
  const given = Buffer.from(m[3]!);
  return want.length === given.length && timingSafeEqual(want, given);
}
