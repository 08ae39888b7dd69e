/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results, and
 * requeues work whose lease has run out.
 */
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type ConnectRequest, type ConnectResponse, type Capabilities } from '@nightshift/proto';
import { SUBJECTS, type Logger } from '@nightshift/common';
import type { Store, JobRow } from './store.js';
import { pickJobs, type NodeCaps } from './scheduler.js';
import type { Live } from './live.js';

export interface HubOptions {
  leaseMs: number;
  heartbeatMs: number;
  /** Jobs queued on a node per render slot, so its GPU never waits for dispatch. */
  prefetchPerSlot: number;
  nodeToken?: string | undefined;
}

type ResponseInit = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

interface Session {
  nodeId: string;
  name: string;
  caps: NodeCaps;
  slots: number;
  call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>;
}

export class NodeHub {
  private readonly sessions = new Map<string, Session>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly live: Live,
    private readonly log: Logger,
    private readonly opts: HubOptions,
    private readonly onEvents: () => void,
  ) {}

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

  /** Periodic work: expire leases, then fill nodes (also picks up retry backoffs). */
  tick(): void {
    const expired = this.store.expireLeases();
    if (expired.length) {
      this.log.warn({ jobs: expired.length, nodes: [...new Set(expired.map((j) => j.node_id))] }, 'leases expired, jobs requeued');
      for (const j of expired) this.live.emit({ type: 'job', sweepId: j.sweep_id, jobId: j.id, state: 'queued' });
    }
    this.dispatch();
  }

  /** Sends each connected node as many jobs as its free prefetch capacity allows. */
  dispatch(): void {
    const now = Date.now();
    for (const s of this.sessions.values()) {
      const free = s.slots * this.opts.prefetchPerSlot - this.store.leasedTo(s.nodeId).length;
      if (free <= 0) continue;
      const leased = this.store.lease(pickJobs(this.store.db, s.caps, free, now), s.nodeId, this.opts.leaseMs);
      for (const job of leased) this.send(s, assignment(job));
      for (const sweepId of new Set(leased.map((j) => j.sweep_id))) this.live.emit({ type: 'sweep', sweepId });
    }
  }

  cancelJobs(jobs: JobRow[], reason: string): void {
    for (const j of jobs) {
      const s = j.node_id ? this.sessions.get(j.node_id) : undefined;
      if (s) this.send(s, { case: 'cancel', value: { jobId: j.id, reason } });
    }
  }

  private send(s: Session, msg: ResponseInit): void {
    s.call.write(create(ConnectResponseSchema, { msg }));
  }

  private authorized(call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>): boolean {
    const token = this.opts.nodeToken;
    if (!token) return true;
    const header = String(call.metadata.get('authorization')[0] ?? '');
    const given = Buffer.from(header.replace(/^Bearer\s+/i, ''));
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  /** grpc-js handler for NodeService.Connect. */
  handle = (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>): void => {
    if (!this.authorized(call)) {
      this.log.warn({ peer: call.getPeer() }, 'node refused: missing or unknown node token');
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'unknown or missing node token' });
      return;
    }
    let session: Session | undefined;
    call.on('data', (req: ConnectRequest) => {
      try {
        session = this.onMessage(call, session, req);
      } catch (err) {
        this.log.error({ err: String(err), node: session?.nodeId }, 'node message failed');
      }
    });
    const close = () => {
      if (!session || this.sessions.get(session.nodeId) !== session) return;
      this.sessions.delete(session.nodeId);
      this.store.setNodeStatus(session.nodeId, 'offline');
      this.live.emit({ type: 'node', nodeId: session.nodeId, status: 'offline' });
      this.log.info({ node: session.nodeId }, 'node disconnected; its leases run out unless it returns');
      session = undefined;
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
  };

  private onMessage(call: Session['call'], session: Session | undefined, req: ConnectRequest): Session | undefined {
    const m = req.msg;
    if (m.case === 'register') {
      const caps = m.value.capabilities ?? ({} as Capabilities);
      const nodeId = m.value.nodeId;
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new Error('invalid node id');
      const s: Session = {
        nodeId,
        name: m.value.name || nodeId,
        caps: { backends: [...caps.backends], models: [...caps.models], vramMb: Number(caps.vramMb) },
        slots: Math.max(1, caps.slots || 1),
        call,
      };
      const previous = this.sessions.get(nodeId);
      if (previous && previous.call !== call) previous.call.end();
      this.sessions.set(nodeId, s);
      this.store.upsertNode(nodeId, s.name, { gpuName: caps.gpuName, vramMb: Number(caps.vramMb), backends: s.caps.backends, models: s.caps.models, slots: s.slots });
      this.send(s, { case: 'registered', value: { nodeId, heartbeatIntervalMs: this.opts.heartbeatMs, leaseMs: this.opts.leaseMs } });
      this.reconcile(s, m.value.heldJobIds);
      this.log.info({ node: nodeId, caps: s.caps, slots: s.slots }, 'node registered');
      this.live.emit({ type: 'node', nodeId, status: 'online' });
      this.store.db.prepare('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES (?, ?, ?, ?)').run(
        SUBJECTS.nodeUp,
        `node.up.${nodeId}.${Date.now()}`,
        JSON.stringify({ nodeId, name: s.name, at: new Date().toISOString() }),
        Date.now(),
      );
      this.onEvents();
      this.dispatch();
      return s;
    }
    if (!session) throw new Error(`message ${m.case} before register`);
    switch (m.case) {
      case 'heartbeat':
        this.store.touchNode(session.nodeId);
        this.store.renewLeases(session.nodeId, m.value.runningJobIds, this.opts.leaseMs);
        break;
      case 'progress': {
        const job = this.store.getJob(m.value.jobId);
        if (job) {
          this.live.emit({
            type: 'progress',
            sweepId: job.sweep_id,
            jobId: job.id,
            step: m.value.step,
            total: m.value.total,
            ...(m.value.previewWebp.length ? { preview: Buffer.from(m.value.previewWebp).toString('base64') } : {}),
          });
        }
        break;
      }
      case 'completed': {
        const v = m.value;
        const changed = this.store.completeJob(v.jobId, session.nodeId, { imageKey: v.imageKey, thumbKey: v.thumbKey, renderMs: v.renderMs, skipped: v.skipped });
        const job = this.store.getJob(v.jobId);
        if (changed && job) {
          this.live.emit({ type: 'job', sweepId: job.sweep_id, jobId: job.id, state: job.state });
          this.live.emit({ type: 'sweep', sweepId: job.sweep_id });
          this.onEvents();
        }
        this.dispatch();
        break;
      }
      case 'failed': {
        const v = m.value;
        const job = this.store.failJob(v.jobId, session.nodeId, v.error, v.logTail);
        if (job) {
          this.log.warn({ node: session.nodeId, job: job.id, attempts: job.attempts, state: job.state, error: v.error }, 'job failed');
          this.live.emit({ type: 'job', sweepId: job.sweep_id, jobId: job.id, state: job.state });
          this.live.emit({ type: 'sweep', sweepId: job.sweep_id });
          this.onEvents();
        }
        this.dispatch();
        break;
      }
      default:
        break;
    }
    return session;
  }

  /**
   * After a (re)connect: jobs the database leases to this node that it no
   * longer holds go back to the queue; jobs it holds that are no longer its
   * own are cancelled on the node, so no image is rendered twice.
   */
  private reconcile(s: Session, held: string[]): void {
    const heldSet = new Set(held);
    const ours = this.store.leasedTo(s.nodeId);
    const lost = ours.filter((j) => !heldSet.has(j.id)).map((j) => j.id);
    if (lost.length) this.store.requeue(lost, 'node restarted without the job');
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
    },
  };
}
