/**
 * Image access for the dashboard when an API token is configured.
 *
 * `fetch` can send `Authorization: Bearer`, but `<img src>` cannot, and the
 * token must never appear in a URL (it would land in logs and history). So
 * the dashboard trades the bearer token (sent as a header) for a short-lived
 * cookie that only opens image bytes: HttpOnly (scripts cannot read it),
 * SameSite=Strict, Path=/ui/files (sent nowhere else), and an HMAC over its
 * user and expiry keyed from the API token, so changing the token revokes
 * every cookie and a coordinator restart does not. The cookie names its
 * user (issue 16): it opens only their images, and only while they still
 * hold an active key (checked on every use, dashboard/index.ts). It never
 * authorises the API.
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

/** A user name in a cookie (key names, and `local`): checked again when read. */
const USER = '[a-z0-9][a-z0-9._-]{0,63}';
const USER_RE = new RegExp(`^${USER}$`);
// The expiry is the digits right before the MAC, the user everything between: one parse only.
const COOKIE_RE = new RegExp(`^(v2\\.(${USER})\\.(\\d{1,15}))\\.([A-Za-z0-9_-]{43})$`);

/** A cookie value for `user`, valid until `expiresAtMs`: `v2.<user>.<expiry>.<mac>`. */
export function issueFilesCookie(token: string, user: string, expiresAtMs: number): string {
  if (!USER_RE.test(user)) throw new Error(`not a user name: ${user}`);
  const payload = `v2.${user}.${Math.floor(expiresAtMs)}`;
  return `${payload}.${sign(token, payload)}`;
}

/** The user a valid, unexpired cookie names; undefined otherwise (a v1 cookie named no user: refused). */
export function verifyFilesCookie(token: string, value: string | undefined, nowMs = Date.now()): string | undefined {
  if (!value) return undefined;
  const m = COOKIE_RE.exec(value);
  if (!m) return undefined;
  if (Number(m[3]) <= nowMs) return undefined;
  const want = Buffer.from(sign(token, m[1]!));
  const given = Buffer.from(m[4]!);
  return want.length === given.length && timingSafeEqual(want, given) ? m[2] : undefined;
}
