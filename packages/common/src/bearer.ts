/**
 * `Authorization: Bearer TOKEN`, read and checked in one place. The check
 * hashes both sides first, so neither the comparison time nor a length
 * mismatch says anything about the expected token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The token of a `Bearer TOKEN` header value (scheme case-insensitive); undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return m ? m[1]!.trim() : undefined;
}

/** Constant-time check that a header value carries `token` as its bearer token. */
export function bearerMatches(token: string, header: string | undefined): boolean {
  const given = bearerToken(header);
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
