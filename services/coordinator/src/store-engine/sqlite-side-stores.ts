/**
 * The SQLite engine's costs and shares: the coordinator's own CostStore and
 * ShareStore over the engine's database, on the engine's clock, behind the
 * async CostEngine and ShareEngine faces (they keep their own SQL).
 */
import type { JobCompleted } from '@nightshift/proto';
import type { StoreBase } from '../store/base.js';
import { CostStore } from '../store/costs.js';
import { ShareStore } from '../store/shares.js';
import type { CostEngine, CostSumRow, JobCostRow, NodeCostSumRow, Recorded, ShareEngine, ShareRow } from './engine.js';

export class SqliteCosts implements CostEngine {
  private readonly costs: CostStore;

  /** `store`: whose database it is (and whose turn an unbatched caller settles first). */
  constructor(private readonly store: StoreBase) {
    this.costs = new CostStore(store.db, store.opts.now);
  }

  async record(jobId: string, nodeId: string, report: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): Promise<Recorded> {
    this.store.settleForCaller();
    return this.costs.record(jobId, nodeId, report);
  }

  async jobCosts(jobId: string): Promise<JobCostRow[]> {
    return this.costs.jobCosts(jobId);
  }

  async sweepSums(sweepId: string): Promise<CostSumRow[]> {
    return this.costs.sweepSums(sweepId);
  }

  async nodeSums(): Promise<NodeCostSumRow[]> {
    return this.costs.nodeSums();
  }
}

export class SqliteShares implements ShareEngine {
  private readonly shares: ShareStore;

  constructor(private readonly store: StoreBase) {
    this.shares = new ShareStore(store.db, store.opts.now);
  }

  async create(share: { title: string; renderKeys: readonly string[]; expiresAt: number; owner?: string; maxLive?: number }): Promise<ShareRow> {
    this.store.settleForCaller();
    return this.shares.create(share);
  }

  async live(id: string): Promise<ShareRow | undefined> {
    return this.shares.live(id);
  }

  async get(id: string): Promise<ShareRow | undefined> {
    return this.shares.get(id);
  }

  async list(owner?: string): Promise<ShareRow[]> {
    return this.shares.list(owner);
  }

  async listAll(): Promise<ShareRow[]> {
    return this.shares.listAll();
  }

  async renderKeys(id: string): Promise<string[]> {
    return this.shares.renderKeys(id);
  }

  async holds(id: string, renderKey: string): Promise<boolean> {
    return this.shares.holds(id, renderKey);
  }

  async delete(id: string, owner?: string): Promise<boolean> {
    this.store.settleForCaller();
    return this.shares.delete(id, owner);
  }

  async pruneExpired(before?: number): Promise<number> {
    this.store.settleForCaller();
    return this.shares.pruneExpired(before);
  }
}
