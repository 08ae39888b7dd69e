/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results (checked
 * first: result-reports.ts) and failures, marks silent nodes down, and
 * duplicates stragglers onto idle nodes. Nodes are not trusted: a node id is
 * bound to the token that enrolled it, and slots are capped.
 * Which job goes where is the scheduler's and placement's (scheduler.ts,
 * placement.ts); what changed reaches live clients and the outbox publisher
 * through the Store's commit hook. This file keeps sessions and messages;
 * beside it: node-inbox.ts (group commit of what nodes say), node-enrolment.ts
 * (tokens and node ids), node-dispatch.ts (filling a node), node-progress.ts,
 * node-sleep.ts, node-messages.ts (what it sends) and node-hub-options.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type Availability, type Capabilities, type ConnectRequest } from '@nightshift/proto';
import { SUBJECTS, type Logger } from '@nightshift/common';
import type { JobRow } from './store.js';
import type { NodeCaps, OnlineNode } from './placement.js';
import { NodeTokens } from './node-tokens.js';
import { isTransientDbError } from './db.js';
import { LoopHealth } from './loop-health.js';
import { ResultReports } from './result-reports.js';
import { sleepOf, type NodeSleep } from './node-sleep.js';
import { cancel, type NodeStream, type RequestOf, type ResponseInit } from './node-messages.js';
import { NodeDispatch } from './node-dispatch.js';
import { relayProgress } from './node-progress.js';
import { NodeInbox, type InboxItem } from './node-inbox.js';
import { NodeEnrolment } from './node-enrolment.js';
import { NodeModels } from './node-models.js';
import type { HubDeps, HubOptions } from './node-hub-options.js';

export { nodeSleepView, type NodeSleep } from './node-sleep.js';
export type { NodeStream } from './node-messages.js';
export type { HubDeps, HubObserver, HubOptions } from './node-hub-options.js';

/** Render slots a node may claim; more is clamped (each slot leases `prefetchPerSlot` jobs). */
export const MAX_SLOTS = 64;

interface Session {
  nodeId: string;
  name: string;
  caps: NodeCaps;
  slots: number;
  lastSeen: number;
  call: NodeStream;
  /** The enrolled token it connected with (by name), so revoking it drops the session. */
  tokenName: string;
  /** Set while the node takes no work: nothing is dispatched to it. */
  sleep: NodeSleep | undefined;
}

export class NodeHub {
  private readonly sessions = new Map<string, Session>();
  private readonly store: HubDeps['store'];
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  /** Node messages received this event-loop turn, handled together (group commit). */
  private readonly inbox: NodeInbox<Session>;
  /** The tick and the inbox flush: failures are retried and shown in /readyz. */
  readonly health: LoopHealth;
  private readonly stopping = new AbortController();
  /** Result reports: checked, looked for in storage, then recorded. */
  private readonly results: ResultReports;
  /** Nodes whose stream ended, by when they were last heard from. */
  private readonly disconnectedAt = new Map<string, number>();
  private readonly enrolment: NodeEnrolment;
  private readonly dispatcher: NodeDispatch<Session>;
  /** What each node holds of registry models (Register and Heartbeat). */
  readonly models: NodeModels;

  constructor(
    private readonly deps: HubDeps,
    private readonly opts: HubOptions,
  ) {
    this.store = deps.store;
    this.log = deps.log;
    this.models = deps.models ?? new NodeModels(() => this.sessions.keys());
    this.enrolment = new NodeEnrolment({
      store: deps.store,
      tokens: opts.tokens ?? new NodeTokens({ token: opts.nodeToken }, deps.log),
      log: deps.log,
      refused: (reason) => opts.observer?.refused?.(reason),
    });
    this.health = new LoopHealth(deps.log);
    this.dispatcher = new NodeDispatch<Session>({
      ...deps,
      opts,
      leased: (count) => opts.observer?.leased?.(count),
      send: (s, msg) => this.send(s, msg),
    });
    this.inbox = new NodeInbox<Session>({
      store: deps.store,
      health: this.health,
      log: deps.log,
      signal: this.stopping.signal,
      handle: (item) => this.handleItem(item),
      afterBatch: (reported) => {
        for (const nodeId of reported) this.dispatch(nodeId);
      },
    });
    this.results = new ResultReports({
      store: deps.store,
      storage: deps.storage,
      log: deps.log,
      attempts: opts.storageAttempts ?? 12,
      signal: this.stopping.signal,
      verified: (nodeId, report) => this.inbox.push({ kind: 'verified', nodeId, report }),
      cancel: (nodeId, jobId, reason) => this.cancelOn(nodeId, jobId, reason),
      completed: (renderMs, skipped) => opts.observer?.completed?.(renderMs, skipped),
      refused: (reason) => opts.observer?.resultRefused?.(reason),
    });
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.min(1_000, this.opts.heartbeatMs)));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    for (const s of this.sessions.values()) s.call.end();
    this.sessions.clear();
  }

  connectedNodeIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** Why a connected node takes no work, and until when; undefined when it works (or is not connected). */
  sleepOf(nodeId: string): NodeSleep | undefined {
    return this.sessions.get(nodeId)?.sleep;
  }

  /** Relays a pause or resume by hand to a connected node; false when it is not connected. */
  setPaused(nodeId: string, paused: boolean): boolean {
    const s = this.sessions.get(nodeId);
    if (!s) return false;
    this.send(s, { case: 'setPaused', value: { paused } });
    return true;
  }

  onlineCaps(): OnlineNode[] {
    return [...this.sessions.values()].map((s) => ({ nodeId: s.nodeId, caps: s.caps, models: this.models.of(s.nodeId) }));
  }

  /**
   * Periodic work: silent nodes, expired leases, then fill nodes (also picks
   * up retry backoffs). A failure (SQLite busy, disk full) rolls back, is
   * logged and shown in /readyz; the next tick is the retry.
   */
  tick(): void {
    try {
      this.store.transaction(() => this.tickNow());
      this.health.ok('tick');
    } catch (err) {
      this.health.failed('tick', err);
    }
  }

  private tickNow(): void {
    const now = Date.now();
    this.dropRevoked();
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastSeen > this.opts.nodeTimeoutMs) this.nodeDown(s, `silent for ${now - s.lastSeen} ms`);
    }
    // A node whose stream broke gets the same timeout to come back before its work moves.
    for (const [nodeId, since] of [...this.disconnectedAt]) {
      if (now - since > this.opts.nodeTimeoutMs) this.markDown(nodeId, `disconnected for ${now - since} ms`);
    }
    this.deps.placement.relaxExclusions();
    const expired = this.store.expireLeases();
    if (expired.length) this.log.warn({ jobs: expired.length, nodes: [...new Set(expired.map((j) => j.node_id))] }, 'leases expired, jobs requeued');
    this.dispatch();
  }

  /**
   * Sends each connected node (or just `only`, after it reported a result) as
   * many jobs as its free prefetch capacity allows.
   */
  dispatch(only?: string): void {
    this.store.transaction(() => this.dispatchNow(only));
  }

  private dispatchNow(only?: string): void {
    const targets = only ? [this.sessions.get(only)].filter((s): s is Session => !!s) : [...this.sessions.values()];
    this.dispatcher.fill(targets, Date.now());
  }

  cancelJobs(jobs: JobRow[], reason: string): void {
    for (const j of jobs) for (const nodeId of [j.node_id, j.copy_node_id]) this.cancelOn(nodeId, j.id, reason);
  }

  private cancelOn(nodeId: string | null, jobId: string, reason: string): void {
    const s = nodeId ? this.sessions.get(nodeId) : undefined;
    if (s) this.send(s, cancel(jobId, reason));
  }

  /** A node never hears of a lease or a cancel that a crash could still undo: messages wait for the commit. */
  private send(s: Session, msg: ResponseInit): void {
    this.store.afterCommit(() => s.call.write(create(ConnectResponseSchema, { msg })));
  }

  /**
   * One inbox item in its own savepoint: a message that fails for its own
   * reasons is rolled back alone and dropped. Returns the node to refill
   * when it reported a result or a failure.
   */
  private handleItem(item: InboxItem<Session>): string | undefined {
    try {
      return this.store.transaction(() => {
        if (item.kind === 'verified') return this.results.finish(item.nodeId, item.report) ? item.nodeId : undefined;
        const session = this.onMessage(item.call, item.get(), item.req);
        item.set(session);
        return session && item.req.msg.case === 'failed' ? session.nodeId : undefined;
      });
    } catch (err) {
      if (isTransientDbError(err)) throw err;
      // Dropped: a later report of the same result is looked at afresh.
      if (item.kind === 'verified') this.results.forget(item.nodeId, item.report.jobId);
      this.log.error({ err: String(err), node: item.kind === 'verified' ? item.nodeId : item.get()?.nodeId }, 'node message failed');
    }
  }

  /** Sessions whose token was revoked (removed from the tokens file) are dropped; the node's reconnect is then refused. */
  private dropRevoked(): void {
    if (!this.enrolment.tokensChanged()) return;
    for (const s of [...this.sessions.values()]) {
      if (this.enrolment.enrolled(s.tokenName)) continue;
      this.log.warn({ node: s.nodeId, tokenName: s.tokenName }, 'node token revoked: session closed');
      this.sessions.delete(s.nodeId);
      this.models.connectedChanged();
      this.store.setNodeStatus(s.nodeId, 'offline');
      s.call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'node token revoked' });
    }
  }

  /** grpc-js handler for NodeService.Connect. */
  handle = (call: NodeStream): void => {
    if (!this.enrolment.admit(call)) return;
    let session: Session | undefined;
    call.on('data', (req: ConnectRequest) => this.inbox.push({ kind: 'message', call, get: () => session, set: (s) => (session = s), req }));
    const close = () => {
      if (!session || this.sessions.get(session.nodeId) !== session) return;
      this.sessions.delete(session.nodeId);
      this.models.connectedChanged();
      this.store.setNodeStatus(session.nodeId, 'offline');
      this.disconnectedAt.set(session.nodeId, session.lastSeen);
      this.log.info({ node: session.nodeId }, 'node disconnected; its work moves unless it returns within the node timeout');
      session = undefined;
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
  };

  /** A node that stopped heartbeating: its work goes back to the queue now. */
  private nodeDown(s: Session, why: string): void {
    this.sessions.delete(s.nodeId);
    this.models.connectedChanged();
    this.markDown(s.nodeId, why);
    try {
      s.call.end();
    } catch {
      /* the stream may already be gone */
    }
  }

  /** Requeues what a node held and tells the world it is down. */
  private markDown(nodeId: string, why: string): void {
    this.disconnectedAt.delete(nodeId);
    const released = this.store.markNodeDown(nodeId, why);
    this.log.warn({ node: nodeId, why, requeued: released.length }, 'node marked down, jobs requeued');
    this.opts.observer?.nodeDown?.(released.length);
  }

  private onMessage(call: Session['call'], session: Session | undefined, req: ConnectRequest): Session | undefined {
    const m = req.msg;
    if (m.case === 'register') return this.register(call, m.value);
    if (!session) throw new Error(`message ${m.case} before register`);
    if (this.sessions.get(session.nodeId) !== session) return undefined; // marked down meanwhile: it must re-register
    session.lastSeen = Date.now();
    switch (m.case) {
      case 'heartbeat':
        this.store.touchNode(session.nodeId);
        this.store.renewLeases(session.nodeId, m.value.runningJobIds, this.opts.leaseMs);
        if (m.value.models) this.models.update(session.nodeId, m.value.models);
        break;
      case 'progress':
        relayProgress(this.deps, session.nodeId, m.value);
        break;
      case 'completed':
        this.results.report(session.nodeId, m.value);
        break;
      case 'failed':
        this.fail(session, m.value);
        break;
      case 'availability':
        this.availability(session, m.value);
        break;
      default:
        break;
    }
    return session;
  }

  /** A node leaves or rejoins the farm; what it handed back is requeued now, not when its lease runs out. */
  private availability(s: Session, a: Availability): void {
    const was = s.sleep;
    s.sleep = sleepOf(a);
    const released = new Set(a.releasedJobIds);
    if (released.size) this.release(s, this.store.leasedTo(s.nodeId).filter((j) => released.has(j.id)), 'node left the farm', true);
    if (!was !== !s.sleep) this.log.info({ node: s.nodeId, ...(s.sleep ?? {}), released: released.size }, s.sleep ? 'node sleeping: no work sent to it' : 'node takes work again');
    if (!s.sleep) this.dispatch(s.nodeId);
  }

  /**
   * Jobs a node no longer holds: its leases go back to the queue, its straggler
   * copies end. `left`: handed back on leaving the farm, which costs the job no attempt.
   */
  private release(s: Session, jobs: JobRow[], reason: string, left = false): void {
    const main = jobs.filter((j) => j.node_id === s.nodeId).map((j) => j.id);
    if (main.length) this.store.requeue(main, reason, { refundAttempt: left });
    for (const j of jobs.filter((j) => j.copy_node_id === s.nodeId)) this.store.dropCopy(j.id);
  }

  private fail(session: Session, v: RequestOf<'failed'>): void {
    if (v.modelUnavailable && this.deps.placement.modelUnavailable) {
      const m = this.deps.placement.modelUnavailable(v.jobId, { id: session.nodeId, vramMb: session.caps.vramMb }, { error: v.error, logTail: v.logTail, outOfMemory: false });
      this.log.warn({ node: session.nodeId, job: v.jobId, counted: m.counted, error: v.error }, 'registry model unavailable on node: job goes elsewhere');
      if (!m.counted) return;
    }
    const r = this.deps.placement.recordFailure(v.jobId, { id: session.nodeId, vramMb: session.caps.vramMb }, { error: v.error, logTail: v.logTail, outOfMemory: v.outOfMemory });
    if (!r) return;
    const { job } = r;
    this.log.warn({ node: session.nodeId, job: job.id, attempts: job.attempts, state: job.state, oom: v.outOfMemory, error: v.error }, 'job failed');
    if (r.blocklisted) this.log.warn({ sweep: job.sweep_id, node: session.nodeId }, 'node blocklisted for this sweep after repeated failures');
    if (r.noCapableNode !== undefined) this.log.error({ sweep: job.sweep_id, failed: r.noCapableNode }, 'sweep failed: no capable node left');
    if (r.tooBigForEveryCard) this.log.warn({ job: job.id, minVramMb: job.min_vram_mb }, 'job failed: out of memory on every node');
  }

  private register(call: Session['call'], reg: RequestOf<'register'>): Session | undefined {
    const caps = reg.capabilities ?? ({} as Capabilities);
    const nodeId = reg.nodeId;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new Error('invalid node id');
    if (!this.enrolment.mayUseNodeId(call, nodeId)) return undefined;
    const claimed = Math.max(1, caps.slots || 1);
    if (claimed > MAX_SLOTS) this.log.warn({ node: nodeId, claimed, slots: MAX_SLOTS }, `node claims more than ${MAX_SLOTS} render slots: clamped to ${MAX_SLOTS}`);
    const s: Session = {
      nodeId,
      name: reg.name || nodeId,
      caps: { backends: [...caps.backends], models: [...caps.models], vramMb: Number(caps.vramMb) },
      slots: Math.min(claimed, MAX_SLOTS),
      lastSeen: Date.now(),
      call,
      tokenName: this.enrolment.token(call).name,
      sleep: reg.availability ? sleepOf(reg.availability) : undefined,
    };
    const previous = this.sessions.get(nodeId);
    if (previous && previous.call !== call) previous.call.end();
    this.sessions.set(nodeId, s);
    this.models.connectedChanged();
    this.disconnectedAt.delete(nodeId);
    this.models.update(nodeId, reg.models);
    this.store.upsertNode(nodeId, s.name, { gpuName: caps.gpuName, vramMb: Number(caps.vramMb), backends: s.caps.backends, models: s.caps.models, slots: s.slots, ...(caps.executionProvider ? { executionProvider: caps.executionProvider } : {}) });
    this.send(s, { case: 'registered', value: { nodeId, heartbeatIntervalMs: this.opts.heartbeatMs, leaseMs: this.opts.leaseMs } });
    // Results first: a job finished while we were apart is done, not lost (and not requeued while its image is looked for).
    const reporting = reg.recentCompletions.filter((c) => this.results.report(nodeId, c)).map((c) => c.jobId);
    const requeued = this.reconcile(s, [...reg.heldJobIds, ...reporting]);
    this.log.info({ node: nodeId, caps: s.caps, slots: s.slots, held: reg.heldJobIds.length }, 'node registered');
    this.store.recordNodeEvent(SUBJECTS.nodeUp, nodeId, { name: s.name });
    // Only what it handed back is news to the other nodes: a thousand nodes reconnecting otherwise fill the whole farm a thousand times.
    this.dispatch(requeued ? undefined : nodeId);
    return s;
  }

  /**
   * After a (re)connect: jobs the database leases to this node that it no
   * longer holds go back to the queue; jobs it holds that are no longer its
   * own are cancelled on the node, so no image is rendered twice. Returns
   * how many went back to the queue (or lost their straggler copy).
   */
  private reconcile(s: Session, held: string[]): number {
    const heldSet = new Set(held);
    const ours = this.store.leasedTo(s.nodeId);
    const lost = ours.filter((j) => !heldSet.has(j.id));
    this.release(s, lost, 'node reconnected without the job');
    this.store.renewLeases(s.nodeId, held, this.opts.leaseMs);
    const oursSet = new Set(ours.map((j) => j.id));
    for (const id of held) if (!oursSet.has(id)) this.send(s, cancel(id, 'lease no longer held'));
    return lost.length;
  }
}
