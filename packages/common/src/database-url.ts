/**
 * NIGHTSHIFT_DATABASE_URL: where the coordinator keeps the farm's state when
 * it is not the embedded SQLite file. Unset (or empty): SQLite in the data
 * folder; `postgres://user:password@host:5432/database` (or `postgresql://`):
 * PostgreSQL, shared by every coordinator replica. The URL carries a
 * password, so errors never quote it and logs show it through
 * `redactDatabaseUrl` (log.ts also censors the setting's own keys).
 */
import { z } from 'zod';

/** Longer than this is a mistake, not a connection string. */
export const MAX_DATABASE_URL_CHARS = 2_048;
const SCHEMES = new Set(['postgres:', 'postgresql:']);
const EXAMPLE = 'postgres://user:password@host:5432/database';

/** Why `value` is not a PostgreSQL URL we accept, or undefined when it is. Never quotes the value (it holds a password). */
export function databaseUrlProblem(value: string): string | undefined {
  if (value.length > MAX_DATABASE_URL_CHARS) return `longer than ${MAX_DATABASE_URL_CHARS} characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `not a URL (expected ${EXAMPLE}; empty keeps the embedded SQLite file)`;
  }
  if (!SCHEMES.has(url.protocol)) return `the scheme must be postgres:// or postgresql://, not ${url.protocol.slice(0, 20)}// (expected ${EXAMPLE}; empty keeps the embedded SQLite file)`;
  // No host is allowed: node-postgres then connects over the local socket (`postgres:///db?host=/run/postgresql`).
  if (url.pathname.length <= 1 && !url.searchParams.has('database')) return `names no database (expected ${EXAMPLE})`;
  return undefined;
}

/** The setting in the config schema: optional (empty counts as unset), otherwise a postgres:// URL. */
export const databaseUrlSetting = z
  .string()
  .optional()
  .superRefine((value, ctx) => {
    const problem = value === undefined ? undefined : databaseUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** The URL with its password (and any `password` query parameter) replaced, for logs and errors. */
export function redactDatabaseUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = 'redacted';
    if (url.searchParams.has('password')) url.searchParams.set('password', 'redacted');
    return url.toString();
  } catch {
    return '[unparsable database URL]';
  }
}
