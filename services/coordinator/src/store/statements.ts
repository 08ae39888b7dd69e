/**
 * Prepared statements compiled once per SQL text and reused: preparing
 * costs more than running these queries. One cache per store class.
 */
import type { Statement } from 'better-sqlite3';
import type { DB } from '../db.js';

export function statementCache(db: DB): (sql: string) => Statement {
  const cache = new Map<string, Statement>();
  return (sql) => {
    let stmt = cache.get(sql);
    if (!stmt) cache.set(sql, (stmt = db.prepare(sql)));
    return stmt;
  };
}
