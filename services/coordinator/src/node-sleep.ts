/** A node that takes no work for now: what it said (Availability) and how GET /api/nodes shows it. */
import type { Availability } from '@nightshift/proto';

/** A node that takes no work for now (its schedule, a busy GPU, a pause by hand): kept in memory only, as the node says it again on every register. */
export interface NodeSleep {
  reason: string;
  /** When it expects to work again (Unix ms), if known. */
  untilMs: number | undefined;
  /** That moment in the node's own local time ("23:00"). */
  untilLocal: string;
}

/** A node's availability message as a sleep; undefined when it accepts work. */
export function sleepOf(a: Availability): NodeSleep | undefined {
  if (a.accepting) return undefined;
  return { reason: a.reason || 'unknown', untilMs: a.untilMs > 0n ? Number(a.untilMs) : undefined, untilLocal: a.untilLocal };
}

/** A sleeping node as GET /api/nodes shows it: "sleeping until 23:00". */
export function nodeSleepView(sleep: NodeSleep | undefined): { reason: string; until: string | null; untilLocal: string; label: string } | null {
  if (!sleep) return null;
  const label = sleep.untilLocal ? `sleeping until ${sleep.untilLocal}` : sleep.reason === 'paused' ? 'paused by hand' : sleep.reason === 'gpu-busy' ? 'sleeping: GPU in use' : 'sleeping';
  return { reason: sleep.reason, until: sleep.untilMs === undefined ? null : new Date(sleep.untilMs).toISOString(), untilLocal: sleep.untilLocal, label };
}
