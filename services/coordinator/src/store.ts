/**
 * All reads and writes of sweeps, jobs, nodes and the outbox. Every state
 * change that others must hear about writes its event into the outbox in the
 * same transaction (docs/design.md "Events"), so a crash can never lose or invent an event.
 * Once a transaction commits, `onCommit` listeners hear what it changed (the
 * outbox publisher wakes, live clients update); decisions about where jobs
 * run and what a failure does are placement.ts's.
 *
 * One class, its persistence split by entity under store/ (Flamenco style):
 * base.ts (statements, transactions, outbox, commit hook) ← sweeps.ts ←
 * jobs.ts ← nodes.ts ← webhooks.ts ← users.ts, each layer free to use the ones below it.
 */
import { UserStore } from './store/users.js';

export class Store extends UserStore {}

export { DEFAULT_STORE_OPTIONS, type Committed, type StoreOptions } from './store/base.js';
export {
  jobId,
  newSweepId,
  type CompleteOutcome,
  type JobRow,
  type JobState,
  type NewJob,
  type NodeRow,
  type SweepCounts,
  type SweepRow,
  type SweepStatus,
} from './store/rows.js';
