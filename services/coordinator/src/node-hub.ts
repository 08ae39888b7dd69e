/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results (checked
 * first: result-reports.ts) and failures, marks silent nodes down, and
 * duplicates stragglers onto idle nodes. Nodes are not trusted: a node id is
 * bound to the token that enrolled it, and slots are capped.
 * Which job goes where is the scheduler's and placement's (scheduler.ts,
 * placement.ts); what changed reaches live clients and the outbox publisher
 * through the Store's commit hook. This file keeps sessions and messages.
 */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type Availability, type Capabilities, type ConnectRequest, type ConnectResponse, type JobCompleted } from '@nightshift/proto';
import { SUBJECTS, type Logger, type Storage } from '@nightshift/common';
import type { JobRow, Store } from './store.js';
import type { Scheduler } from './scheduler.js';
import type { NodeCaps, OnlineNode, Placement } from './placement.js';
import type { Live } from './live.js';
import { MAX_PREVIEW_BYTES, type PreviewStore } from './previews.js';
import { NodeTokens } from './node-tokens.js';
import { isTransientDbError } from './db.js';
import { LoopHealth } from './loop-health.js';
import type { Refusal } from './store/completion.js';
import { ResultReports } from './result-reports.js';

/** Render slots a node may claim; more is clamped (each slot leases `prefetchPerSlot` jobs). */
export const MAX_SLOTS = 64;

/** What the hub uses, so tests can give it stand-ins. */
export interface HubDeps {
  store: Pick<
    Store,
    'transaction' | 'afterCommit' | 'heldCount' | 'lease' | 'leaseCopy' | 'getJob' | 'expireLeases' | 'setNodeStatus' | 'markNodeDown'
    | 'touchNode' | 'renewLeases' | 'completeJob' | 'upsertNode' | 'recordNodeEvent' | 'leasedTo' | 'requeue' | 'dropCopy'
    | 'nodeTokenBinding' | 'bindNodeToken'
  >;
  /** Where nodes upload: a reported image must be there before its job is done. */
  storage: Pick<Storage, 'exists'>;
  scheduler: Pick<Scheduler, 'pick' | 'straggler'>;
  placement: Pick<Placement, 'relaxExclusions' | 'recordFailure' | 'worthCopying'>;
  /** Render progress only: state changes reach live clients through the Store's commit hook. */
  live: Pick<Live, 'emit'>;
  log: Logger;
  previews?: Pick<PreviewStore, 'offer'> | undefined;
}

/** Hooks for the metrics (metrics.ts); every one optional. */
export interface HubObserver {
  leased?(count: number): void;
  completed?(renderMs: number, skipped: boolean): void;
  nodeDown?(requeued: number): void;
  refused?(reason: string): void;
  /** A result report refused: not the node's job, not its keys, or the image is not stored. */
  resultRefused?(reason: Refusal['reason']): void;
}

export interface HubOptions {
  leaseMs: number;
  heartbeatMs: number;
  /** A node silent for this long is marked down and its jobs requeued. */
  nodeTimeoutMs: number;
  /** Jobs queued on a node per render slot, so its GPU never waits for dispatch. */
  prefetchPerSlot: number;
  /** A job may be duplicated onto an idle node once it has run this long (and 3× the sweep's median). */
  stragglerMinMs: number;
  nodeToken?: string | undefined;
  /** Enrolled node tokens (node-tokens.ts); defaults to nodeToken alone. */
  tokens?: NodeTokens | undefined;
  observer?: HubObserver | undefined;
  /** Storage HEADs per reported image before it counts as missing (backoff up to 5 s between them). */
  storageAttempts?: number | undefined;
}

/** A node that takes no work for now (its schedule, a busy GPU, a pause by hand): kept in memory only, as the node says it again on every register. */
export interface NodeSleep {
  reason: string;
  /** When it expects to work again (Unix ms), if known. */
  untilMs: number | undefined;
  /** That moment in the node's own local time ("23:00"). */
  untilLocal: string;
}

type ResponseInit = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

/** What the hub uses of a Connect stream (grpc-js's ServerDuplexStream is one; tests pass a stand-in). */
export interface NodeStream {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  on(event: 'data', listener: (req: ConnectRequest) => void): unknown;
  on(event: 'end' | 'error' | 'cancelled', listener: () => void): unknown;
  write(msg: ConnectResponse): unknown;
  end(): void;
  emit(event: 'error', status: Partial<grpc.StatusObject>): unknown;
}

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

/** What arrived for the hub this turn: a node's message, or a result whose image storage confirmed. */
type InboxItem =
  | { kind: 'message'; call: Session['call']; get: () => Session | undefined; set: (s: Session | undefined) => void; req: ConnectRequest }
  | { kind: 'verified'; nodeId: string; report: JobCompleted };

export class NodeHub {
  private readonly sessions = new Map<string, Session>();
  private readonly store: HubDeps['store'];
  private readonly live: HubDeps['live'];
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  /** Node messages received this event-loop turn, handled together (group commit). */
  private inbox: InboxItem[] = [];
  private flushScheduled = false;
  /** The tick and the inbox flush: failures are retried and shown in /readyz. */
  readonly health: LoopHealth;
  private readonly stopping = new AbortController();
  /** Result reports: checked, looked for in storage, then recorded. */
  private readonly results: ResultReports;
  /** Nodes whose stream ended, by when they were last heard from. */
  private readonly disconnectedAt = new Map<string, number>();
  private readonly tokens: NodeTokens;
  private tokensRevision: number;
  private readonly tokenOf = new WeakMap<Session['call'], { name: string; fingerprint?: string | undefined }>();

  constructor(
    private readonly deps: HubDeps,
    private readonly opts: HubOptions,
  ) {
    this.store = deps.store;
    this.live = deps.live;
    this.log = deps.log;
    this.tokens = opts.tokens ?? new NodeTokens({ token: opts.nodeToken }, deps.log);
    this.tokensRevision = this.tokens.revision;
    this.health = new LoopHealth(deps.log);
    this.results = new ResultReports({
      store: deps.store,
      storage: deps.storage,
      log: deps.log,
      attempts: opts.storageAttempts ?? 12,
      signal: this.stopping.signal,
      verified: (nodeId, report) => this.push({ kind: 'verified', nodeId, report }),
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
    return [...this.sessions.values()].map((s) => ({ nodeId: s.nodeId, caps: s.caps }));
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
    const now = Date.now();
    const targets = only ? [this.sessions.get(only)].filter((s): s is Session => !!s) : [...this.sessions.values()];
    for (const s of targets) {
      if (s.sleep) continue;
      const held = this.store.heldCount(s.nodeId);
      let free = s.slots * this.opts.prefetchPerSlot - held;
      let leased = 0;
      while (free > 0) {
        const id = this.deps.scheduler.pick(s.nodeId, s.caps, now);
        const job = id ? this.store.lease([id], s.nodeId, this.opts.leaseMs)[0] : undefined;
        if (!job) break;
        this.opts.observer?.leased?.(1);
        this.send(s, assignment(job));
        leased++;
        free--;
      }
      if (held === 0 && leased === 0) this.dispatchStraggler(s, now);
    }
  }

  /** An idle node with nothing queued takes a copy of the slowest running job; first result wins. */
  private dispatchStraggler(s: Session, now: number): void {
    const id = this.deps.scheduler.straggler(s.nodeId, s.caps, now - this.opts.stragglerMinMs);
    if (!id || !this.deps.placement.worthCopying(id, now)) return;
    const copy = this.store.leaseCopy(id, s.nodeId, this.opts.leaseMs);
    if (!copy) return;
    this.opts.observer?.leased?.(1);
    this.log.info({ job: id, slowNode: copy.node_id, copyNode: s.nodeId, runningMs: now - (copy.started_at ?? now) }, 'straggler duplicated onto an idle node');
    this.send(s, assignment(copy));
  }

  cancelJobs(jobs: JobRow[], reason: string): void {
    for (const j of jobs) for (const nodeId of [j.node_id, j.copy_node_id]) this.cancelOn(nodeId, j.id, reason);
  }

  private cancelOn(nodeId: string | null, jobId: string, reason: string): void {
    const s = nodeId ? this.sessions.get(nodeId) : undefined;
    if (s) this.send(s, { case: 'cancel', value: { jobId, reason } });
  }

  /** A node never hears of a lease or a cancel that a crash could still undo: messages wait for the commit. */
  private send(s: Session, msg: ResponseInit): void {
    this.store.afterCommit(() => s.call.write(create(ConnectResponseSchema, { msg })));
  }

  private push(item: InboxItem): void {
    this.inbox.push(item);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushInbox());
    }
  }

  /**
   * Handles everything that arrived in this turn of the event loop in one
   * transaction, each message in its own savepoint: a message that fails is
   * rolled back alone and dropped. A database failure (busy, disk full)
   * rolls the batch back instead; it is retried with backoff, and nodes
   * heard nothing of it (messages to them wait for the commit).
   */
  private flushInbox(): void {
    this.flushScheduled = false;
    if (this.stopping.signal.aborted) return;
    const batch = this.inbox;
    this.inbox = [];
    const reported = new Set<string>();
    let committed = false;
    try {
      this.store.transaction(() => {
        this.store.afterCommit(() => (committed = true));
        for (const item of batch) this.handleItem(item, reported);
        for (const nodeId of reported) this.dispatch(nodeId);
      });
      this.health.ok('inbox');
    } catch (err) {
      // After the commit only a node's stream can have thrown: the batch is recorded, nothing to retry.
      if (committed) return this.log.error({ err: String(err) }, 'after-commit work failed');
      const failures = this.health.failed('inbox', err);
      this.inbox = [...retryable(batch), ...this.inbox];
      this.flushScheduled = true;
      setTimeout(() => this.flushInbox(), Math.min(5_000, 50 * 2 ** Math.min(failures, 7))).unref();
    }
  }

  private handleItem(item: InboxItem, reported: Set<string>): void {
    try {
      this.store.transaction(() => {
        if (item.kind === 'verified') {
          if (this.results.finish(item.nodeId, item.report)) reported.add(item.nodeId);
          return;
        }
        const session = this.onMessage(item.call, item.get(), item.req);
        item.set(session);
        if (session && item.req.msg.case === 'failed') reported.add(session.nodeId);
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
    this.tokens.refresh();
    if (this.tokens.revision === this.tokensRevision) return;
    this.tokensRevision = this.tokens.revision;
    for (const s of [...this.sessions.values()]) {
      if (this.tokens.has(s.tokenName)) continue;
      this.log.warn({ node: s.nodeId, tokenName: s.tokenName }, 'node token revoked: session closed');
      this.sessions.delete(s.nodeId);
      this.store.setNodeStatus(s.nodeId, 'offline');
      s.call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'node token revoked' });
    }
  }

  /** grpc-js handler for NodeService.Connect. */
  handle = (call: NodeStream): void => {
    const auth = this.tokens.check(String(call.metadata.get('authorization')[0] ?? ''));
    if (!auth.ok) {
      // The reason and a fingerprint of the token's hash, never the token itself.
      const claimed = String(call.metadata.get('x-nightshift-node')[0] ?? '') || undefined;
      this.log.warn({ peer: call.getPeer(), node: claimed, reason: auth.reason, fingerprint: auth.fingerprint }, 'node refused: bad node token');
      this.opts.observer?.refused?.(auth.reason);
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `node token refused (${auth.reason}): enrol this node with a token the coordinator knows (README "Node enrolment")` });
      return;
    }
    this.tokenOf.set(call, { name: auth.name, fingerprint: auth.fingerprint });
    let session: Session | undefined;
    call.on('data', (req: ConnectRequest) => this.push({ kind: 'message', call, get: () => session, set: (s) => (session = s), req }));
    const close = () => {
      if (!session || this.sessions.get(session.nodeId) !== session) return;
      this.sessions.delete(session.nodeId);
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
        break;
      case 'progress': {
        const job = this.store.getJob(m.value.jobId);
        // Only a job's holder speaks for it; an oversized preview is ignored (the node should have dropped it).
        if (job && (job.node_id === session.nodeId || job.copy_node_id === session.nodeId)) {
          const bytes = m.value.previewWebp.length;
          if (bytes > MAX_PREVIEW_BYTES) this.log.debug({ node: session.nodeId, job: job.id, bytes }, 'preview over the size bound ignored');
          const preview = bytes && bytes <= MAX_PREVIEW_BYTES ? Buffer.from(m.value.previewWebp) : undefined;
          if (preview) this.deps.previews?.offer(job.id, preview);
          this.live.emit({
            type: 'progress',
            sweepId: job.sweep_id,
            jobId: job.id,
            step: m.value.step,
            total: m.value.total,
            ...(preview ? { preview: preview.toString('base64') } : {}),
          });
        }
        break;
      }
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
    if (released.size) this.release(s, this.store.leasedTo(s.nodeId).filter((j) => released.has(j.id)), 'node left the farm');
    if (!was !== !s.sleep) this.log.info({ node: s.nodeId, ...(s.sleep ?? {}), released: released.size }, s.sleep ? 'node sleeping: no work sent to it' : 'node takes work again');
    if (!s.sleep) this.dispatch(s.nodeId);
  }

  /** Jobs a node no longer holds: its leases go back to the queue, its straggler copies end. */
  private release(s: Session, jobs: JobRow[], reason: string): void {
    const main = jobs.filter((j) => j.node_id === s.nodeId).map((j) => j.id);
    if (main.length) this.store.requeue(main, reason);
    for (const j of jobs.filter((j) => j.copy_node_id === s.nodeId)) this.store.dropCopy(j.id);
  }

  private fail(session: Session, v: Extract<ConnectRequest['msg'], { case: 'failed' }>['value']): void {
    const r = this.deps.placement.recordFailure(v.jobId, { id: session.nodeId, vramMb: session.caps.vramMb }, { error: v.error, logTail: v.logTail, outOfMemory: v.outOfMemory });
    if (!r) return;
    const { job } = r;
    this.log.warn({ node: session.nodeId, job: job.id, attempts: job.attempts, state: job.state, oom: v.outOfMemory, error: v.error }, 'job failed');
    if (r.blocklisted) this.log.warn({ sweep: job.sweep_id, node: session.nodeId }, 'node blocklisted for this sweep after repeated failures');
    if (r.noCapableNode !== undefined) this.log.error({ sweep: job.sweep_id, failed: r.noCapableNode }, 'sweep failed: no capable node left');
    if (r.tooBigForEveryCard) this.log.warn({ job: job.id, minVramMb: job.min_vram_mb }, 'job failed: out of memory on every node');
  }

  private register(call: Session['call'], reg: Extract<ConnectRequest['msg'], { case: 'register' }>['value']): Session | undefined {
    const caps = reg.capabilities ?? ({} as Capabilities);
    const nodeId = reg.nodeId;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new Error('invalid node id');
    const token = this.tokenOf.get(call) ?? { name: 'open' };
    if (!this.mayUseNodeId(call, nodeId, token.fingerprint)) return undefined;
    const claimed = Math.max(1, caps.slots || 1);
    if (claimed > MAX_SLOTS) this.log.warn({ node: nodeId, claimed, slots: MAX_SLOTS }, `node claims more than ${MAX_SLOTS} render slots: clamped to ${MAX_SLOTS}`);
    const s: Session = {
      nodeId,
      name: reg.name || nodeId,
      caps: { backends: [...caps.backends], models: [...caps.models], vramMb: Number(caps.vramMb) },
      slots: Math.min(claimed, MAX_SLOTS),
      lastSeen: Date.now(),
      call,
      tokenName: token.name,
      sleep: reg.availability ? sleepOf(reg.availability) : undefined,
    };
    const previous = this.sessions.get(nodeId);
    if (previous && previous.call !== call) previous.call.end();
    this.sessions.set(nodeId, s);
    this.disconnectedAt.delete(nodeId);
    this.store.upsertNode(nodeId, s.name, { gpuName: caps.gpuName, vramMb: Number(caps.vramMb), backends: s.caps.backends, models: s.caps.models, slots: s.slots });
    this.send(s, { case: 'registered', value: { nodeId, heartbeatIntervalMs: this.opts.heartbeatMs, leaseMs: this.opts.leaseMs } });
    // Results first: a job finished while we were apart is done, not lost (and not requeued while its image is looked for).
    const reporting = reg.recentCompletions.filter((c) => this.results.report(nodeId, c)).map((c) => c.jobId);
    this.reconcile(s, [...reg.heldJobIds, ...reporting]);
    this.log.info({ node: nodeId, caps: s.caps, slots: s.slots, held: reg.heldJobIds.length }, 'node registered');
    this.store.recordNodeEvent(SUBJECTS.nodeUp, nodeId, { name: s.name });
    this.dispatch();
    return s;
  }

  /**
   * A node id belongs to the token that first enrolled it (when node tokens
   * are configured): another token claiming it is refused, unless the first
   * was revoked since. Nothing of the claimant is recorded.
   */
  private mayUseNodeId(call: Session['call'], nodeId: string, fingerprint: string | undefined): boolean {
    if (!fingerprint) return true;
    const bound = this.store.nodeTokenBinding(nodeId);
    if (bound === fingerprint) return true;
    if (bound && this.tokens.hasFingerprint(bound)) {
      this.log.warn({ peer: call.getPeer(), node: nodeId, fingerprint, boundTo: bound }, 'node refused: its id belongs to another token');
      this.opts.observer?.refused?.('node id bound to another token');
      this.store.afterCommit(() =>
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `node id ${nodeId} is enrolled with another token; choose another NIGHTSHIFT_NODE_ID` }),
      );
      return false;
    }
    if (bound) this.log.warn({ node: nodeId, fingerprint, was: bound }, 'node id re-enrolled: the token it was bound to is revoked');
    this.store.bindNodeToken(nodeId, fingerprint);
    return true;
  }

  /**
   * After a (re)connect: jobs the database leases to this node that it no
   * longer holds go back to the queue; jobs it holds that are no longer its
   * own are cancelled on the node, so no image is rendered twice.
   */
  private reconcile(s: Session, held: string[]): void {
    const heldSet = new Set(held);
    const ours = this.store.leasedTo(s.nodeId);
    this.release(s, ours.filter((j) => !heldSet.has(j.id)), 'node reconnected without the job');
    this.store.renewLeases(s.nodeId, held, this.opts.leaseMs);
    const oursSet = new Set(ours.map((j) => j.id));
    for (const id of held) if (!oursSet.has(id)) this.send(s, { case: 'cancel', value: { jobId: id, reason: 'lease no longer held' } });
  }
}

/** What a failed flush keeps for its retry: progress is cosmetic and only each stream's newest heartbeat matters. */
function retryable(batch: InboxItem[]): InboxItem[] {
  const lastHeartbeat = new Map<Session['call'], InboxItem>();
  for (const item of batch) if (item.kind === 'message' && item.req.msg.case === 'heartbeat') lastHeartbeat.set(item.call, item);
  return batch.filter((item) => {
    if (item.kind === 'verified') return true;
    if (item.req.msg.case === 'progress') return false;
    return item.req.msg.case !== 'heartbeat' || lastHeartbeat.get(item.call) === item;
  });
}

/** A sleeping node as GET /api/nodes shows it: "sleeping until 23:00". */
export function nodeSleepView(sleep: NodeSleep | undefined): { reason: string; until: string | null; untilLocal: string; label: string } | null {
  if (!sleep) return null;
  const label = sleep.untilLocal ? `sleeping until ${sleep.untilLocal}` : sleep.reason === 'paused' ? 'paused by hand' : sleep.reason === 'gpu-busy' ? 'sleeping: GPU in use' : 'sleeping';
  return { reason: sleep.reason, until: sleep.untilMs === undefined ? null : new Date(sleep.untilMs).toISOString(), untilLocal: sleep.untilLocal, label };
}

function sleepOf(a: Availability): NodeSleep | undefined {
  if (a.accepting) return undefined;
  return { reason: a.reason || 'unknown', untilMs: a.untilMs > 0n ? Number(a.untilMs) : undefined, untilLocal: a.untilLocal };
}

function assignment(job: JobRow): ResponseInit {
  return {
    case: 'assign',
    value: {
      jobId: job.id,
      sweepId: job.sweep_id,
      renderKey: job.render_key,
      prompt: job.prompt,
      seed: BigInt(job.seed),
      paramsJson: job.params_json,
      backend: job.backend,
      model: job.model,
      attempt: job.attempts,
      leaseExpiresAtMs: BigInt(job.lease_expires_at ?? 0),
      kind: job.kind,
      sourceKey: job.source_key ?? '',
    },
  };
}
