/**
 * Filling a node: as many leased jobs as its free prefetch capacity allows
 * (the store's `leaseNext` picks which by the scheduler's rule and leases it
 * in one transaction, so replicas never hand out the same job), or, for an
 * idle node with nothing queued, a copy of the slowest running job (first
 * result wins). The hub runs one fill per node at a time (its node line).
 */
import type { Logger } from '@nightshift/common';
import type { NodeCaps, Placement } from './placement.js';
import type { NodeSleep } from './node-sleep.js';
import type { PickModels, StoreEngine } from './store-engine/engine.js';
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
  engine: Pick<StoreEngine, 'heldCount' | 'leaseNext' | 'leaseCopy' | 'straggler' | 'anyStraggler'>;
  placement: Pick<Placement, 'worthCopying'>;
  log: Logger;
  opts: { leaseMs: number; prefetchPerSlot: number; stragglerMinMs: number };
  /** What the node holds of registry models and how many nodes hold each (the pick prefers a loaded model). */
  models(nodeId: string): Promise<PickModels>;
  /** Jobs leased (metrics). */
  leased(count: number): void;
  /** Sends a message to the node (what it is sent is committed already). */
  send(target: T, msg: ResponseInit): void;
}

/**
 * How long a "no running job could be copied" answer is trusted (ms). At a
 * sweep's tail every node that runs dry asked again, each a walk of the
 * leased jobs (1.3 ms on PostgreSQL; 712 times in a 10-second sweep at
 * 1,000 nodes). A copy starts at most this much later, against a
 * NIGHTSHIFT_STRAGGLER_MIN_MS of a minute by default.
 */
export const NO_COPY_RECHECK_MS = 1_000;

/** One pass over many nodes: whether any running job could be copied at all is asked once, at its first idle node. */
export interface FillPass {
  now: number;
  copiable?: Promise<boolean>;
}

export class NodeDispatch<T extends DispatchTarget> {
  /** params.batch: a node's prefetch holds whole batches (dispatch-batch.ts). */
  private readonly batches = new NodeBatches();
  /**
   * Nodes whose last fill left them at capacity: the periodic fills pass them
   * by (at 1,000 nodes a count of held jobs each, every second) until they
   * may have room again: a report of theirs, a heartbeat naming fewer jobs
   * than their capacity, a cancel, a new session.
   */
  private readonly full = new Set<string>();
  /** Until when no running job could be copied, as last asked (NO_COPY_RECHECK_MS). */
  private noCopyUntil = -Infinity;

  constructor(private readonly deps: DispatchDeps<T>) {}

  /** Whether the periodic fill may pass this node by. */
  isFull(nodeId: string): boolean {
    return this.full.has(nodeId);
  }

  /** The node may have room: its next fill counts again. */
  mayHaveRoom(nodeId: string): void {
    this.full.delete(nodeId);
  }

  /** A heartbeat: a node running fewer jobs than its capacity has room (a job ended without the hub hearing, say through another replica). */
  heard(s: T, running: number): void {
    if (running < this.capacity(s)) this.full.delete(s.nodeId);
  }

  private capacity(s: T): number {
    return s.slots * this.deps.opts.prefetchPerSlot * this.batches.of(s.nodeId);
  }

  /** Fills one node that takes work; returns how many jobs it was given. Never run two fills of one node at once. */
  async fill(s: T, pass: FillPass): Promise<number> {
    const { engine, opts } = this.deps;
    this.full.delete(s.nodeId);
    if (s.sleep) return 0;
    const held = await engine.heldCount(s.nodeId);
    const capacity = () => this.capacity(s);
    let leased = 0;
    if (held < capacity()) {
      const models = await this.deps.models(s.nodeId);
      while (held + leased < capacity()) {
        const job = await engine.leaseNext(s.nodeId, s.caps, opts.leaseMs, models);
        if (!job) break;
        this.batches.leased(s.nodeId, job.params_json, s.caps.vramMb);
        this.deps.leased(1);
        this.deps.send(s, assignment(job));
        leased++;
      }
    }
    if (held + leased >= capacity()) this.full.add(s.nodeId);
    if (held === 0 && leased === 0 && (await this.copiable(pass))) return this.straggler(s, pass.now);
    return leased;
  }

  /** Whether any running job could be copied now: asked once a pass, and not again for a while after a no. */
  private copiable(pass: FillPass): Promise<boolean> {
    if (pass.now < this.noCopyUntil) return Promise.resolve(false);
    return (pass.copiable ??= this.deps.engine.anyStraggler(pass.now - this.deps.opts.stragglerMinMs).then((yes) => {
      if (!yes) this.noCopyUntil = Math.max(this.noCopyUntil, pass.now + NO_COPY_RECHECK_MS);
      return yes;
    }));
  }

  /** An idle node with nothing queued takes a copy of the slowest running job; first result wins. */
  private async straggler(s: T, now: number): Promise<number> {
    const { engine, opts } = this.deps;
    const id = await engine.straggler(s.nodeId, s.caps, now - opts.stragglerMinMs);
    if (!id || !(await this.deps.placement.worthCopying(id, now))) return 0;
    const copy = await engine.leaseCopy(id, s.nodeId, opts.leaseMs);
    if (!copy) return 0;
    this.deps.leased(1);
    this.deps.log.info({ job: id, slowNode: copy.node_id, copyNode: s.nodeId, runningMs: now - (copy.started_at ?? now) }, 'straggler duplicated onto an idle node');
    this.deps.send(s, assignment(copy));
    return 1;
  }
}
