/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results and
 * failures, marks silent nodes down, and duplicates stragglers onto idle nodes.
 * Which job goes where is the scheduler's and placement's (scheduler.ts,
 * placement.ts); what changed reaches live clients and the outbox publisher
 * through the Store's commit hook. This file keeps sessions and messages.
 */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type Capabilities, type ConnectRequest, type ConnectResponse, type JobCompleted } from '@nightshift/proto';
import { SUBJECTS, type Logger } from '@nightshift/common';
import type { JobRow, Store } from './store.js';
import type { Scheduler } from './scheduler.js';
import type { NodeCaps, OnlineNode, Placement } from './placement.js';
import type { Live } from './live.js';
import type { PreviewStore } from './previews.js';
import { NodeTokens } from './node-tokens.js';

/** What the hub uses, so tests can give it stand-ins. */
export interface HubDeps {
  store: Pick<
    Store,
    'transaction' | 'afterCommit' | 'heldCount' | 'lease' | 'leaseCopy' | 'getJob' | 'expireLeases' | 'setNodeStatus' | 'markNodeDown'
    | 'touchNode' | 'renewLeases' | 'completeJob' | 'upsertNode' | 'recordNodeEvent' | 'leasedTo' | 'requeue' | 'dropCopy'
  >;
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
}

export class NodeHub {
  private readonly sessions = new Map<string, Session>();
  private readonly store: HubDeps['store'];
  private readonly live: HubDeps['live'];
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  /** Node messages received this event-loop turn, handled together (group commit). */
  private inbox: { call: Session['call']; get: () => Session | undefined; set: (s: Session | undefined) => void; req: ConnectRequest }[] = [];
  private flushScheduled = false;
  /** Nodes whose stream ended, by when they were last heard from. */
  private readonly disconnectedAt = new Map<string, number>();
  private readonly tokens: NodeTokens;
  private tokensRevision: number;
  private readonly tokenOf = new WeakMap<Session['call'], string>();

  constructor(
    private readonly deps: HubDeps,
    private readonly opts: HubOptions,
  ) {
    this.store = deps.store;
    this.live = deps.live;
    this.log = deps.log;
    this.tokens = opts.tokens ?? new NodeTokens({ token: opts.nodeToken }, deps.log);
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

  onlineCaps(): OnlineNode[] {
    return [...this.sessions.values()].map((s) => ({ nodeId: s.nodeId, caps: s.caps }));
  }

  /** Periodic work: silent nodes, expired leases, then fill nodes (also picks up retry backoffs). */
  tick(): void {
    this.store.transaction(() => this.tickNow());
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

  /** Handles everything that arrived in this turn of the event loop in one transaction. */
  private flushInbox(): void {
    this.flushScheduled = false;
    const batch = this.inbox;
    this.inbox = [];
    const reported = new Set<string>();
    this.store.transaction(() => {
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
        if (job) {
          const preview = m.value.previewWebp.length ? Buffer.from(m.value.previewWebp) : undefined;
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
        this.complete(session.nodeId, m.value);
        break;
      case 'failed':
        this.fail(session, m.value);
        break;
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
    this.store.recordNodeEvent(SUBJECTS.nodeUp, nodeId, { name: s.name });
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
