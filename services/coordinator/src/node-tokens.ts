/**
 * Node enrolment: the set of tokens a gpu-node may present on NodeService.Connect.
 *
 * Sources, all optional (none configured = open farm, for loopback use):
 *   NIGHTSHIFT_NODE_TOKEN        one shared token (the original setting)
 *   NIGHTSHIFT_NODE_TOKENS       a comma-separated list
 *   NIGHTSHIFT_NODE_TOKENS_FILE  `NAME sha256:HEX` lines, written by `tokens.ts add`
 *
 * Only SHA-256 hashes are kept, in memory and in the file, so a leaked file
 * or heap dump does not enrol anyone. Revoking is removing a token: the file
 * is re-read when it changes, and the hub disconnects sessions whose token is
 * gone. Token values are never logged; a short fingerprint of the hash is.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '@nightshift/common';

export interface TokenSources {
  token?: string | undefined;
  tokens?: string | undefined;
  file?: string | undefined;
}

interface Entry {
  name: string;
  hash: Buffer;
}

/** `fingerprint` (of the token's hash) is absent on an open farm; a node id is bound to it at first enrolment. */
export type TokenCheck = { ok: true; name: string; fingerprint?: string } | { ok: false; reason: 'missing token' | 'unknown or revoked token'; fingerprint?: string };

export const sha256 = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
/** Identifies a token in logs and listings without revealing it. */
export const fingerprint = (hash: Buffer): string => hash.toString('hex').slice(0, 12);

/** One line of a tokens file: `NAME sha256:HEX`; blank lines and `#` comments are skipped. */
export function parseTokensFile(text: string): { entries: Entry[]; errors: string[] } {
  const entries: Entry[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const m = /^([A-Za-z0-9._-]{1,64})\s+sha256:([0-9a-f]{64})$/.exec(line);
    if (!m) errors.push(`line ${i + 1}: expected "NAME sha256:<64 hex digits>"`);
    else entries.push({ name: m[1]!, hash: Buffer.from(m[2]!, 'hex') });
  });
  return { entries, errors };
}

export class NodeTokens {
  private fixed: Entry[] = [];
  private fromFile: Entry[] = [];
  private fileStamp = '';
  /** Bumped whenever the set changes, so the hub re-checks live sessions only then. */
  revision = 0;

  constructor(
    private readonly sources: TokenSources,
    private readonly log?: Logger,
  ) {
    const list = [sources.token, ...(sources.tokens ?? '').split(',')].map((t) => t?.trim()).filter((t): t is string => !!t);
    this.fixed = list.map((t) => {
      const hash = sha256(t);
      return { name: `env:${fingerprint(hash)}`, hash };
    });
    this.refresh();
  }

  /** True when any token source is configured: then every node must present a known token. */
  get enabled(): boolean {
    return this.fixed.length > 0 || !!this.sources.file;
  }

  get size(): number {
    return this.fixed.length + this.fromFile.length;
  }

  /** Re-reads the tokens file if it changed (a stat per call: cheap at connect and tick rates). */
  refresh(): void {
    const file = this.sources.file;
    if (!file) return;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      stamp = 'missing';
      if (this.fileStamp !== stamp) {
        // Fail closed: no file, no file tokens (env tokens still work).
        this.log?.error({ file, err: (err as Error).message }, 'node tokens file unreadable: its tokens are refused');
        this.fromFile = [];
        this.fileStamp = stamp;
        this.revision++;
      }
      return;
    }
    if (stamp === this.fileStamp) return;
    const { entries, errors } = parseTokensFile(readFileSync(file, 'utf8'));
    if (errors.length) this.log?.error({ file, errors }, 'node tokens file has bad lines (skipped)');
    this.fromFile = entries;
    this.fileStamp = stamp;
    this.revision++;
    this.log?.info({ file, tokens: entries.length }, 'node tokens loaded');
  }

  /** Checks an `authorization` header value (`Bearer TOKEN`). */
  check(header: string | undefined): TokenCheck {
    if (!this.enabled) return { ok: true, name: 'open' };
    const token = (header ?? '').replace(/^Bearer\s+/i, '');
    if (!token) return { ok: false, reason: 'missing token' };
    this.refresh();
    const hash = sha256(token);
    let found: Entry | undefined;
    // Every entry is compared (constant time each), so timing says nothing about which matched.
    for (const e of [...this.fixed, ...this.fromFile]) if (timingSafeEqual(e.hash, hash) && !found) found = e;
    return found ? { ok: true, name: found.name, fingerprint: fingerprint(found.hash) } : { ok: false, reason: 'unknown or revoked token', fingerprint: fingerprint(hash) };
  }

  /** Is the token with this fingerprint still enrolled? (A node id bound to a revoked token may be enrolled anew.) */
  hasFingerprint(fp: string): boolean {
    this.refresh();
    return [...this.fixed, ...this.fromFile].some((e) => fingerprint(e.hash) === fp);
  }

  /** Is the token known by this name still enrolled? */
  has(name: string): boolean {
    return !this.enabled || name === 'open' || this.fixed.some((e) => e.name === name) || this.fromFile.some((e) => e.name === name);
  }
}
