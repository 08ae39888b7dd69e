/**
 * Filling a node: as many leased jobs as its free prefetch capacity allows
 * (the scheduler picks which), or, for an idle node with nothing queued, a
 * copy of the slowest running job (first result wins).
 */
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';
import type { Scheduler } from './scheduler.js';
import type { NodeCaps, Placement } from './placement.js';
import type { NodeSleep } from './node-sleep.js';
import { assignment, type ResponseInit } from './node-messages.js';
import { NodeBatches } from './dispatch-batch.js';

/** What dispatch reads of a session. */
export interface DispatchTarget {
  nodeId: string;
  caps: NodeCaps;
  slots: number;
  sleep: NodeSleep | undefined;
}

export interface DispatchDeps<T extends DispatchTarget> {
  store: Pick<Store, 'heldCount' | 'lease' | 'leaseCopy'>;
  scheduler: Pick<Scheduler, 'pick' | 'straggler' | 'anyStraggler'>;
  placement: Pick<Placement, 'worthCopying'>;
  log: Logger;
  opts: { leaseMs: number; prefetchPerSlot: number; stragglerMinMs: number };
  /** Jobs leased (metrics). */
  leased(count: number): void;
  /** Sends a message to the node once the transaction commits. */
  send(target: T, msg: ResponseInit): void;
}

export class NodeDispatch<T extends DispatchTarget> {
  /** params.batch: a node's prefetch holds whole batches (dispatch-batch.ts). */
  private readonly batches = new NodeBatches();

  constructor(private readonly deps: DispatchDeps<T>) {}

  /** Fills each target that takes work; call inside a transaction. */
  fill(targets: T[], now: number): void {
    const { store, scheduler, opts } = this.deps;
    // Asked once per fill, at its first idle node: most fills have no job that could be copied at all.
    let copiable: boolean | undefined;
    for (const s of targets) {
      if (s.sleep) continue;
      // Two index probes a node (about 4 µs): a thousand-node fill costs a few ms a tick this way.
      const held = store.heldCount(s.nodeId);
      let leased = 0;
      while (held + leased < s.slots * opts.prefetchPerSlot * this.batches.of(s.nodeId)) {
        const id = scheduler.pick(s.nodeId, s.caps, now);
        const job = id ? store.lease([id], s.nodeId, opts.leaseMs)[0] : undefined;
        if (!job) break;
        this.batches.leased(s.nodeId, job.params_json, s.caps.vramMb);
        this.deps.leased(1);
        this.deps.send(s, assignment(job));
        leased++;
      }
      if (held === 0 && leased === 0 && (copiable ??= scheduler.anyStraggler(now - opts.stragglerMinMs))) this.straggler(s, now);
    }
  }

  /** An idle node with nothing queued takes a copy of the slowest running job; first result wins. */
  private straggler(s: T, now: number): void {
    const { store, opts } = this.deps;
    const id = this.deps.scheduler.straggler(s.nodeId, s.caps, now - opts.stragglerMinMs);
    if (!id || !this.deps.placement.worthCopying(id, now)) return;
    const copy = store.leaseCopy(id, s.nodeId, opts.leaseMs);
    if (!copy) return;
    this.deps.leased(1);
    this.deps.log.info({ job: id, slowNode: copy.node_id, copyNode: s.nodeId, runningMs: now - (copy.started_at ?? now) }, 'straggler duplicated onto an idle node');
    this.deps.send(s, assignment(copy));
  }
}
