/**
 * Picks on PostgreSQL a turn's worth at a time (turn-batches.ts). A pick
 * alone cost the database about 0.38 ms of CPU, most of it the statement's
 * fixed cost (its plan's start, a run of each statement trigger on jobs, a
 * commit); in turns of 10 like nodes 0.12 ms a pick, of 64 0.076
 * (bench/pick-batch-pg.ts). At 1,000 one-second nodes the database's CPU a
 * job went from 0.94 to 0.30–0.47 ms (bench/scale.ts).
 *
 * The nodes of a batch are grouped by what the pick reads of them besides
 * their id (backends, card, models, lease length, rule 4's values); each
 * group of two or more is one PICK_MANY_SQL, a group of one the plain pick.
 * A node PICK_MANY_SQL leaves alone (blocklisted, or excluded from a job)
 * then picks by itself. These statements run GROUPS_AT_ONCE at a time (nodes
 * with their own model state are groups of one, and picked concurrently as
 * before picks were batched, without filling the pool the result and
 * heartbeat batches need too).
 *
 * Each statement commits on its own, so a failing one never takes the
 * others' leases with it: its nodes get its error (or, when it failed on a
 * value one node sent, pick alone, so only that node's pick fails), and no
 * statement's answer is thrown away once it has committed (TurnBatches,
 * given a throw, would fail every caller of the batch).
 */
import type pg from 'pg';
import type { NodeCaps } from '../placement.js';
import type { JobRow } from '../store/rows.js';
import type { PickModels } from './engine.js';
import { PICK_AND_LEASE_SQL, PICK_MANY_SQL, pickModelValues } from './postgres-pick.js';
import { notTheDatabases } from './postgres-pool.js';
import { TurnBatches } from './turn-batches.js';

export interface PickAsk {
  nodeId: string;
  caps: NodeCaps;
  leaseMs: number;
  models: PickModels | undefined;
}

/** Most nodes in one statement: a batch's picks read the counters as they were at its start, so fair share moves in steps of at most this. */
export const PICK_BATCH_MAX = 64;
/** Statements of one batch in flight at once (the pool has 10 connections by default). */
export const GROUPS_AT_ONCE = 4;

type Values = ReturnType<typeof pickModelValues>;

export class PgPicks {
  /** Statements run so far (tests and bench/pick-batch-pg.ts: what batching saves). */
  statements = 0;
  private readonly batches = new TurnBatches<PickAsk, JobRow | undefined>((asks) => this.pickAll(asks), { max: PICK_BATCH_MAX });

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  /** The node's next job, leased to it, or none. */
  pick(ask: PickAsk): Promise<JobRow | undefined> {
    return this.batches.add(ask);
  }

  private async pickAll(asks: readonly PickAsk[]): Promise<(JobRow | undefined | Error)[]> {
    const out: (JobRow | undefined | Error)[] = asks.map(() => undefined);
    const groups = new Map<string, { at: number[]; values: Values }>();
    asks.forEach((a, i) => {
      const values = pickModelValues(a.caps.models, a.models);
      const key = JSON.stringify([a.caps.backends, a.caps.vramMb, a.caps.models, a.leaseMs, values]);
      const group = groups.get(key);
      if (group) group.at.push(i);
      else groups.set(key, { at: [i], values });
    });
    const alone: { i: number; values: Values }[] = [];
    await eachAtOnce([...groups.values()], GROUPS_AT_ONCE, async ({ at, values }) => {
      for (const i of at.length === 1 ? at : await this.manyOrAlone(asks, at, values, out)) alone.push({ i, values });
    });
    await eachAtOnce(alone, GROUPS_AT_ONCE, async ({ i, values }) => {
      try {
        out[i] = await this.one(asks[i]!, values);
      } catch (err) {
        out[i] = asError(err);
      }
    });
    return out;
  }

  /** A group's picks in one statement, into `out`; returns the positions of its nodes left to pick alone. Never throws. */
  private async manyOrAlone(asks: readonly PickAsk[], at: number[], values: Values, out: (JobRow | undefined | Error)[]): Promise<number[]> {
    try {
      return await this.many(asks, at, values, out);
    } catch (err) {
      // A value one of them sent: each picks alone, so that one's pick fails and only it.
      if (notTheDatabases(err)) return at;
      for (const i of at) out[i] = asError(err);
      return [];
    }
  }

  private async one(a: PickAsk, values: Values): Promise<JobRow | undefined> {
    this.statements++;
    // Named, so each connection plans it once (planning cost more than running it).
    const { rows } = await this.pool.query<JobRow>({ name: 'nightshift-pick-and-lease', text: PICK_AND_LEASE_SQL, values: this.params(a.nodeId, a, values) });
    return rows[0];
  }

  /** $1–$12 of both pick statements: $1 the node (or the group's nodes), the rest from one of them (a group's are alike). */
  private params(nodes: string | string[], a: PickAsk, values: Values): unknown[] {
    const now = this.now();
    return [nodes, a.caps.backends, a.caps.vramMb, a.caps.models, now, now + a.leaseMs, ...values];
  }

  /** The group's picks in one statement, into `out`; returns the positions of the nodes left to pick alone. */
  private async many(asks: readonly PickAsk[], at: number[], values: Values, out: (JobRow | undefined | Error)[]): Promise<number[]> {
    this.statements++;
    const { rows } = await this.pool.query<JobRow & { alone: string | null }>({
      name: 'nightshift-pick-many',
      text: PICK_MANY_SQL,
      values: this.params(at.map((i) => asks[i]!.nodeId), asks[at[0]!]!, values),
    });
    // A node asking twice in one batch (it never does: the hub fills a node once at a time) gets a job for each ask.
    // Every row names a node that asked (the statement leases only to $1's): nothing here throws after the commit.
    const open = [...at];
    const take = (nodeId: string): number | undefined => {
      const k = open.findIndex((i) => asks[i]!.nodeId === nodeId);
      return k < 0 ? undefined : open.splice(k, 1)[0];
    };
    const alone: number[] = [];
    for (const { alone: node, ...job } of rows) {
      const i = take(node ?? job.node_id!);
      if (i === undefined) continue;
      if (node !== null) alone.push(i);
      else out[i] = job;
    }
    return alone.sort((a, b) => a - b);
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** `fn` over `items`, at most `n` at once. */
async function eachAtOnce<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
