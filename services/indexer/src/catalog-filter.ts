/** Search and gallery filters, and the SQL they become over the catalog's images table. */
import { LOCAL_USER } from './catalog-schema.js';

/** Metadata filters; every one is optional. */
export interface Filter {
  model: string;
  sweep?: string | undefined;
  prompt?: string | undefined;
  favorites?: boolean | undefined;
  /** Whose favorites `favorites` means (the coordinator's user; `local` when unset). */
  user?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  hideDuplicates?: boolean | undefined;
}

/** WHERE clause and parameters for a filter (always restricted to the current model). */
export function filterWhere(f: Filter): { sql: string; params: unknown[] } {
  const parts = ['model = ?'];
  const params: unknown[] = [f.model];
  if (f.sweep) {
    parts.push('sweep_id = ?');
    params.push(f.sweep);
  }
  // instr, not LIKE: no wildcard escaping, and case-folded on both sides.
  if (f.prompt) {
    parts.push('instr(lower(prompt), lower(?)) > 0');
    params.push(f.prompt);
  }
  if (f.favorites) {
    parts.push('render_key IN (SELECT render_key FROM favorites WHERE user = ?)');
    params.push(f.user ?? LOCAL_USER);
  }
  if (f.from) {
    parts.push('created_at >= ?');
    params.push(f.from);
  }
  if (f.to) {
    parts.push('created_at < ?');
    params.push(f.to);
  }
  if (f.hideDuplicates) parts.push('dup_of IS NULL');
  return { sql: parts.join(' AND '), params };
}
