// @ts-check
// Durations and "ago" texts.

/**
 * "42 s", "3 min 5 s", "2 h 10 min"; "—" when unknown.
 * @param {number | null | undefined} s seconds
 */
export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  const hrs = Math.floor(s / 3600);
  return `${hrs} h ${Math.round((s % 3600) / 60)} min`;
}

/**
 * "just now", "5 min ago"; "—" when unknown.
 * @param {string | null | undefined} iso
 */
export function fmtAgo(iso) {
  if (!iso) return '—';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 2) return 'just now';
  return `${fmtDuration(s)} ago`;
}
