/**
 * Share link tokens: `v1.<share id>.<expiry ms>.<HMAC-SHA256>`, signed with a
 * secret only the coordinator holds (never the API token: a share link must
 * not be a way to learn or stand in for it). The secret is made once, 32
 * random bytes, in `share-secret` next to the coordinator's database (its
 * data folder), mode 0600; an in-memory database gets a secret for the
 * process. The signature only proves the coordinator made the link: whether
 * it is still good (not revoked, not expired) is the shares table's answer.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const SHARE_SECRET_FILE = 'share-secret';

const TOKEN_RE = /^v1\.(sh_[A-Za-z0-9_-]{16})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

/** The secret in `dir`, made on first use (`wx`: two processes starting at once keep the first one's). */
export function loadShareSecret(dir: string): Buffer {
  const file = join(dir, SHARE_SECRET_FILE);
  try {
    writeFileSync(file, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  if (secret.length < 32) throw new Error(`${file} holds fewer than 32 bytes: delete it to make a new one (every share link made so far stops working)`);
  return secret;
}

/** The secret for a database file (better-sqlite3's `name`): next to it, or a process-lifetime one for `:memory:`. */
export function shareSecretFor(dbFile: string): Buffer {
  return dbFile === ':memory:' || dbFile === '' ? randomBytes(32) : loadShareSecret(dirname(dbFile));
}

export class ShareTokens {
  constructor(private readonly secret: Buffer) {}

  private mac(payload: string): string {
    return createHmac('sha256', this.secret).update(`nightshift share\0${payload}`).digest('base64url');
  }

  sign(id: string, expiresAt: number): string {
    const payload = `v1.${id}.${Math.floor(expiresAt)}`;
    return `${payload}.${this.mac(payload)}`;
  }

  /** The share a token names, when this coordinator signed it; undefined for anything else. */
  verify(token: string): { id: string; expiresAt: number } | undefined {
    const m = TOKEN_RE.exec(token);
    if (!m) return undefined;
    const want = Buffer.from(this.mac(`v1.${m[1]}.${m[2]}`));
    const given = Buffer.from(m[3]!);
    if (want.length !== given.length || !timingSafeEqual(want, given)) return undefined;
    return { id: m[1]!, expiresAt: Number(m[2]) };
  }
}
