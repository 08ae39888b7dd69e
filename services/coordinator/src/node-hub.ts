/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results and
 * failures, marks silent nodes down, and duplicates stragglers onto idle nodes.
 */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type Capabilities, type ConnectRequest, type ConnectResponse, type JobCompleted } from '@nightshift/proto';
import { SUBJECTS, type Logger } from '@nightshift/common';
import type { JobRow, Store } from './store.js';
import { Scheduler, type NodeCaps } from './scheduler.js';
import type { Live } from './live.js';
import type { PreviewStore } from './previews.js';
import { NodeTokens } from './node-tokens.js';

/** Hooks for the metrics (metrics.ts); every one optional. */
export interface HubObserver {
  leased?(count: number): void;
  completed?(renderMs: number, skipped: boolean): void;
  nodeDown?(requeued: number): void;
  refused?(reason: string): void;
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
}

type ResponseInit = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

interface Session {
  nodeId: string;
  name: string;
  caps: NodeCaps;
  slots: number;
  lastSeen: number;
  call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>;
  /** The enrolled token it connected with (by name), so revoking it drops the session. */
  tokenName: string;
}

export class NodeHub {
  private readonly sessions = new Map<string, Session>();
  private readonly scheduler: Scheduler;
  private timer: NodeJS.Timeout | undefined;
  /** Node messages received this event-loop turn, handled together (group commit). */
  private inbox: { call: Session['call']; get: () => Session | undefined; set: (s: Session | undefined) => void; req: ConnectRequest }[] = [];
  private flushScheduled = false;
  /** Nodes whose stream ended, by when they were last heard from. */
  private readonly disconnectedAt = new Map<string, number>();
  /** While a batch's transaction is open, messages to nodes wait here until it commits. */
  private outgoing: [Session, ResponseInit][] | undefined;
  private readonly tokens: NodeTokens;
  private tokensRevision: number;
  private readonly tokenOf = new WeakMap<Session['call'], string>();

  constructor(
    private readonly store: Store,
    private readonly live: Live,
    private readonly log: Logger,
    private readonly opts: HubOptions,
    private readonly onEvents: () => void,
    private readonly previews?: PreviewStore,
  ) {
    this.scheduler = new Scheduler(store.db);
    this.tokens = opts.tokens ?? new NodeTokens({ token: opts.nodeToken }, log);
    this.tokensRevision = this.tokens.revision;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.min(1_000, this.opts.heartbeatMs)));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sessions.values()) s.call.end();
    this.sessions.clear();
  }

  connectedNodeIds(): string[] {
    return [...this.sessions.keys()];
  }

  onlineCaps(): { nodeId: string; caps: NodeCaps }[] {
    return [...this.sessions.values()].map((s) => ({ nodeId: s.nodeId, caps: s.caps }));
  }

  /** Periodic work: silent nodes, expired leases, then fill nodes (also picks up retry backoffs). */
  tick(): void {
    this.atomically(() => this.tickNow());
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
    this.relaxExclusions();
    const expired = this.store.expireLeases();
    if (expired.length) {
      this.log.warn({ jobs: expired.length, nodes: [...new Set(expired.map((j) => j.node_id))] }, 'leases expired, jobs requeued');
      for (const j of expired) this.live.emit({ type: 'job', sweepId: j.sweep_id, jobId: j.id, state: 'queued' });
    }
    this.dispatch();
  }

  /**
   * A job is kept away from nodes it failed on — unless those are the only
   * capable nodes online (a one-GPU farm): then it may retry there, and
   * maxAttempts and the blocklist still bound how often.
   */
  private relaxExclusions(): void {
    const rows = this.store.queuedWithExclusions();
    if (!rows.length) return;
    const online = this.onlineCaps();
    const blockedBySweep = new Map<string, Set<string>>();
    for (const row of rows) {
      let blocked = blockedBySweep.get(row.sweep_id);
      if (!blocked) blockedBySweep.set(row.sweep_id, (blocked = new Set(this.store.blockedNodes(row.sweep_id))));
      const capable = online.filter((n) => !blocked.has(n.nodeId) && n.caps.backends.includes(row.backend) && n.caps.vramMb >= row.min_vram_mb);
      const excluded = new Set(JSON.parse(row.excluded_nodes) as string[]);
      if (capable.length > 0 && capable.every((n) => excluded.has(n.nodeId))) {
        this.store.clearExclusions(row.id);
      }
    }
  }

  /**
   * Sends each connected node (or just `only`, after it reported a result) as
   * many jobs as its free prefetch capacity allows.
   */
  dispatch(only?: string): void {
    this.atomically(() => this.dispatchNow(only));
  }

  private dispatchNow(only?: string): void {
    const now = Date.now();
    const targets = only ? [this.sessions.get(only)].filter((s): s is Session => !!s) : [...this.sessions.values()];
    for (const s of targets) {
      const held = this.store.heldCount(s.nodeId);
      let free = s.slots * this.opts.prefetchPerSlot - held;
      const touched = new Set<string>();
      while (free > 0) {
        const id = this.scheduler.pick(s.nodeId, s.caps, now);
        const job = id ? this.store.lease([id], s.nodeId, this.opts.leaseMs)[0] : undefined;
        if (!job) break;
        this.opts.observer?.leased?.(1);
        this.send(s, assignment(job));
        touched.add(job.sweep_id);
        free--;
      }
      if (held === 0 && touched.size === 0) this.dispatchStraggler(s, now);
      for (const sweepId of touched) this.live.emit({ type: 'sweep', sweepId });
    }
  }

  /** An idle node with nothing queued takes a copy of the slowest running job; first result wins. */
  private dispatchStraggler(s: Session, now: number): void {
    const id = this.scheduler.straggler(s.nodeId, s.caps, now - this.opts.stragglerMinMs);
    if (!id) return;
    const job = this.store.getJob(id)!;
    const times = this.store.recentFinishes(job.sweep_id, 50).map((f) => f.render_ms ?? 0).sort((a, b) => a - b);
    const median = times.length ? times[Math.floor(times.length / 2)]! : 0;
    if (now - (job.started_at ?? now) < 3 * median) return;
    const copy = this.store.leaseCopy(id, s.nodeId, this.opts.leaseMs);
    if (!copy) return;
    this.opts.observer?.leased?.(1);
    this.log.info({ job: id, slowNode: copy.node_id, copyNode: s.nodeId, runningMs: now - (job.started_at ?? now) }, 'straggler duplicated onto an idle node');
    this.send(s, assignment(copy));
  }

  cancelJobs(jobs: JobRow[], reason: string): void {
    for (const j of jobs) for (const nodeId of [j.node_id, j.copy_node_id]) this.cancelOn(nodeId, j.id, reason);
  }

  private cancelOn(nodeId: string | null, jobId: string, reason: string): void {
    const s = nodeId ? this.sessions.get(nodeId) : undefined;
    if (s) this.send(s, { case: 'cancel', value: { jobId, reason } });
  }

  /** Which queued work no online node can take, in words (GET /api/sweeps/:id). */
  explain(sweepId: string): string[] {
    const groups = this.store.queuedRequirements(sweepId);
    const blocked = new Set(this.store.blockedNodes(sweepId));
    const nodes = this.onlineCaps().filter((n) => !blocked.has(n.nodeId));
    const out: string[] = [];
    for (const g of groups) {
      if (nodes.some((n) => n.caps.backends.includes(g.backend) && n.caps.vramMb >= g.min_vram_mb)) continue;
      const gb = Math.round((g.min_vram_mb / 1024) * 10) / 10;
      out.push(`${g.n} job(s) wait: no ${blocked.size ? 'usable ' : ''}node with ≥ ${gb} GB VRAM and backend ${g.backend}${blocked.size ? ` (blocklisted for this sweep: ${[...blocked].join(', ')})` : ''}`);
    }
    return out;
  }

  private send(s: Session, msg: ResponseInit): void {
    if (this.outgoing) this.outgoing.push([s, msg]);
    else s.call.write(create(ConnectResponseSchema, { msg }));
  }

  /**
   * Runs `work` in one transaction and only then tells the nodes: a node never
   * hears of a lease or a cancel that a crash could still undo.
   */
  private atomically<T>(work: () => T): T {
    if (this.outgoing) return work();
    this.outgoing = [];
    let result: T;
    try {
      result = this.store.db.transaction(work)();
    } catch (err) {
      this.outgoing = undefined;
      throw err;
    }
    const sends = this.outgoing;
    this.outgoing = undefined;
    for (const [session, msg] of sends) session.call.write(create(ConnectResponseSchema, { msg }));
    return result;
  }

  /** Handles everything that arrived in this turn of the event loop in one transaction. */
  private flushInbox(): void {
    this.flushScheduled = false;
    const batch = this.inbox;
    this.inbox = [];
    const reported = new Set<string>();
    this.atomically(() => {
      for (const item of batch) {
        try {
          const session = this.onMessage(item.call, item.get(), item.req);
          item.set(session);
          if (session && (item.req.msg.case === 'completed' || item.req.msg.case === 'failed')) reported.add(session.nodeId);
        } catch (err) {
          this.log.error({ err: String(err), node: item.get()?.nodeId }, 'node message failed');
        }
      }
      for (const nodeId of reported) this.dispatch(nodeId);
    });
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
      this.live.emit({ type: 'node', nodeId: s.nodeId, status: 'offline' });
      s.call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'node token revoked' });
    }
  }

  /** grpc-js handler for NodeService.Connect. */
  handle = (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>): void => {
    const auth = this.tokens.check(String(call.metadata.get('authorization')[0] ?? ''));
    if (!auth.ok) {
      // The reason and a fingerprint of the token's hash, never the token itself.
      const claimed = String(call.metadata.get('x-nightshift-node')[0] ?? '') || undefined;
      this.log.warn({ peer: call.getPeer(), node: claimed, reason: auth.reason, fingerprint: auth.fingerprint }, 'node refused: bad node token');
      this.opts.observer?.refused?.(auth.reason);
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `node token refused (${auth.reason}): enrol this node with a token the coordinator knows (README "Node enrolment")` });
      return;
    }
    this.tokenOf.set(call, auth.name);
    let session: Session | undefined;
    call.on('data', (req: ConnectRequest) => {
      this.inbox.push({ call, get: () => session, set: (s) => (session = s), req });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushInbox());
      }
    });
    const close = () => {
      if (!session || this.sessions.get(session.nodeId) !== session) return;
      this.sessions.delete(session.nodeId);
      this.store.setNodeStatus(session.nodeId, 'offline');
      this.live.emit({ type: 'node', nodeId: session.nodeId, status: 'offline' });
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
    this.store.setNodeStatus(nodeId, 'offline');
    const released = this.store.releaseNode(nodeId, `node ${nodeId} down: ${why}`);
    this.outboxNode(SUBJECTS.nodeDown, nodeId, { why, requeued: released.length });
    this.log.warn({ node: nodeId, why, requeued: released.length }, 'node marked down, jobs requeued');
    this.opts.observer?.nodeDown?.(released.length);
    this.live.emit({ type: 'node', nodeId, status: 'down' });
  }

  private outboxNode(subject: string, nodeId: string, extra: Record<string, unknown>): void {
    this.store.recordNodeEvent(subject, nodeId, extra);
    this.onEvents();
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
        if (job) {
          const preview = m.value.previewWebp.length ? Buffer.from(m.value.previewWebp) : undefined;
          if (preview) this.previews?.offer(job.id, preview);
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
        this.complete(session.nodeId, m.value);
        break;
      case 'failed': {
        const v = m.value;
        const r = this.store.failJob(v.jobId, { id: session.nodeId, vramMb: session.caps.vramMb }, { error: v.error, logTail: v.logTail, outOfMemory: v.outOfMemory });
        if (r) {
          const { job } = r;
          this.log.warn({ node: session.nodeId, job: job.id, attempts: job.attempts, state: job.state, oom: v.outOfMemory, error: v.error }, 'job failed');
          if (r.blocklisted) this.log.warn({ sweep: job.sweep_id, node: session.nodeId }, 'node blocklisted for this sweep after repeated failures');
          // Checked after every failure, not just at the blocklisting: jobs that were in flight then come back later.
          this.failIfNoCapableNode(job.sweep_id);
          if (v.outOfMemory && job.state === 'queued' && !this.anyKnownNodeWithVram(job.min_vram_mb)) {
            this.store.failQueuedJob(job.id, `out of memory on every node: needs more than ${job.min_vram_mb - 1} MB VRAM`);
          }
          this.live.emit({ type: 'job', sweepId: job.sweep_id, jobId: job.id, state: job.state });
          this.live.emit({ type: 'sweep', sweepId: job.sweep_id });
          this.onEvents();
        }
        break;
      }
      default:
        break;
    }
    return session;
  }

  private complete(nodeId: string, v: JobCompleted): void {
    const outcome = this.store.completeJob(v.jobId, nodeId, { imageKey: v.imageKey, thumbKey: v.thumbKey, renderMs: v.renderMs, skipped: v.skipped, model: v.model || undefined });
    for (const other of outcome.cancelOn) this.cancelOn(other, v.jobId, 'another node finished this job first');
    if (!outcome.accepted) return;
    this.opts.observer?.completed?.(v.renderMs, v.skipped);
    const job = this.store.getJob(v.jobId);
    if (!job) return;
    this.live.emit({ type: 'job', sweepId: job.sweep_id, jobId: job.id, state: job.state });
    this.live.emit({ type: 'sweep', sweepId: job.sweep_id });
    this.onEvents();
  }

  private anyKnownNodeWithVram(minVramMb: number): boolean {
    return this.store.listNodes().some((n) => Number((JSON.parse(n.capabilities_json) as { vramMb?: number }).vramMb ?? 0) >= minVramMb);
  }

  /** A sweep fails only when no online capable node is left for it (all blocklisted). */
  private failIfNoCapableNode(sweepId: string): void {
    const sweep = this.store.getSweep(sweepId);
    if (!sweep) return;
    const blocked = new Set(this.store.blockedNodes(sweepId));
    if (blocked.size === 0) return;
    const online = this.onlineCaps();
    const capable = online.filter((n) => !blocked.has(n.nodeId) && n.caps.backends.includes(sweep.backend));
    if (online.length > 0 && capable.length === 0) {
      const n = this.store.failQueued(sweepId, `no capable node left: every node with backend ${sweep.backend} is blocklisted for this sweep`);
      this.log.error({ sweep: sweepId, failed: n }, 'sweep failed: no capable node left');
    }
  }

  private register(call: Session['call'], reg: Extract<ConnectRequest['msg'], { case: 'register' }>['value']): Session {
    const caps = reg.capabilities ?? ({} as Capabilities);
    const nodeId = reg.nodeId;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new Error('invalid node id');
    const s: Session = {
      nodeId,
      name: reg.name || nodeId,
      caps: { backends: [...caps.backends], models: [...caps.models], vramMb: Number(caps.vramMb) },
      slots: Math.max(1, caps.slots || 1),
      lastSeen: Date.now(),
      call,
      tokenName: this.tokenOf.get(call) ?? 'open',
    };
    const previous = this.sessions.get(nodeId);
    if (previous && previous.call !== call) previous.call.end();
    this.sessions.set(nodeId, s);
    this.disconnectedAt.delete(nodeId);
    this.store.upsertNode(nodeId, s.name, { gpuName: caps.gpuName, vramMb: Number(caps.vramMb), backends: s.caps.backends, models: s.caps.models, slots: s.slots });
    this.send(s, { case: 'registered', value: { nodeId, heartbeatIntervalMs: this.opts.heartbeatMs, leaseMs: this.opts.leaseMs } });
    // Results first: a job finished while we were apart is done, not lost.
    for (const c of reg.recentCompletions) this.complete(nodeId, c);
    this.reconcile(s, reg.heldJobIds);
    this.log.info({ node: nodeId, caps: s.caps, slots: s.slots, held: reg.heldJobIds.length }, 'node registered');
    this.live.emit({ type: 'node', nodeId, status: 'online' });
    this.outboxNode(SUBJECTS.nodeUp, nodeId, { name: s.name });
    this.dispatch();
    return s;
  }

  /**
   * After a (re)connect: jobs the database leases to this node that it no
   * longer holds go back to the queue; jobs it holds that are no longer its
   * own are cancelled on the node, so no image is rendered twice.
   */
  private reconcile(s: Session, held: string[]): void {
    const heldSet = new Set(held);
    const ours = this.store.leasedTo(s.nodeId);
    const lost = ours.filter((j) => !heldSet.has(j.id));
    const lostMain = lost.filter((j) => j.node_id === s.nodeId).map((j) => j.id);
    if (lostMain.length) this.store.requeue(lostMain, 'node reconnected without the job');
    for (const j of lost.filter((j) => j.copy_node_id === s.nodeId)) this.store.dropCopy(j.id);
    this.store.renewLeases(s.nodeId, held, this.opts.leaseMs);
    const oursSet = new Set(ours.map((j) => j.id));
    for (const id of held) if (!oursSet.has(id)) this.send(s, { case: 'cancel', value: { jobId: id, reason: 'lease no longer held' } });
  }
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
