/** Offset/limit paging for list endpoints: every list answers a page, never the whole table. */
import type { Context } from 'hono';

export interface Page {
  offset: number;
  limit: number;
}

/** The page a request asks for (`?offset=&limit=`), or an error message for a bad one. */
export function pageOf(c: Context, defaultLimit: number, maxLimit: number): Page | { error: string } {
  const offset = c.req.query('offset') ?? '0';
  const limit = c.req.query('limit') ?? String(defaultLimit);
  if (!/^\d{1,15}$/.test(offset) || !/^\d{1,15}$/.test(limit) || Number(limit) < 1 || Number(limit) > maxLimit) {
    return { error: `offset must be an integer ≥ 0 and limit an integer from 1 to ${maxLimit}` };
  }
  return { offset: Number(offset), limit: Number(limit) };
}

/** The paging fields of a response: where the next page starts, or null after the last. */
export function pageInfo(page: Page, returned: number, total: number): { offset: number; limit: number; total: number; nextOffset: number | null } {
  const next = page.offset + returned;
  return { offset: page.offset, limit: page.limit, total, nextOffset: returned > 0 && next < total ? next : null };
}
