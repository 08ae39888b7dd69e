/**
 * The coordinator's side of NodeService.Connect: one session per connected
 * gpu-node. It registers nodes, hands out leased jobs up to each node's
 * prefetch capacity, renews leases on heartbeats, records results (checked
 * first: result-reports.ts) and failures, marks silent nodes down, and
 * duplicates stragglers onto idle nodes. Nodes are not trusted: a node id is
 * bound to the token that enrolled it, and slots are capped.
 * Which job goes where is the scheduler's and placement's (scheduler.ts,
 * placement.ts); what changed reaches live clients and the outbox publisher
 * through the store's commit hook. The store is the async StoreEngine, so the
 * same hub runs on SQLite and on PostgreSQL beside other replicas: each call
 * commits on its own, and a node hears of a lease only after it committed.
 * Everything about one node (its messages, fills, its mark-down) runs in that
 * node's line (keyed-queue.ts), so no two of them interleave across awaits.
 * This file keeps sessions and messages; beside it: node-enrolment.ts
 * (tokens and node ids), node-dispatch.ts (filling a node), result-reports.ts,
 * node-progress.ts, node-sleep.ts, node-messages.ts (what it sends),
 * holder-counts.ts and node-hub-options.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { ConnectResponseSchema, type Availability, type Capabilities, type ConnectRequest } from '@nightshift/proto';
import { SUBJECTS, type Logger } from '@nightshift/common';
import type { JobRow } from './store.js';
import type { NodeCaps, OnlineNode } from './placement.js';
import type { JobCompleted } from '@nightshift/proto';
import { NodeTokens } from './node-tokens.js';
import { LoopHealth } from './loop-health.js';
import { ResultReports } from './result-reports.js';
import { sleepOf, type NodeSleep } from './node-sleep.js';
import { cancel, type NodeStream, type RequestOf, type ResponseInit } from './node-messages.js';
import { NodeDispatch, type FillPass } from './node-dispatch.js';
import { ProgressRelay, relayProgress } from './node-progress.js';
import { KeyedQueue } from './keyed-queue.js';
import { LoopSlices } from './loop-slices.js';
import { HolderCounts } from './holder-counts.js';
import { NodeEnrolment } from './node-enrolment.js';
import { NodeModels } from './node-models.js';
import type { HubDeps, HubOptions } from './node-hub-options.js';

export { nodeSleepView, type NodeSleep } from './node-sleep.js';
export type { NodeStream } from './node-messages.js';
export type { HubDeps, HubObserver, HubOptions } from './node-hub-options.js';

/** Render slots a node may claim; more is clamped (each slot leases `prefetchPerSlot` jobs). */
export const MAX_SLOTS = 64;
/** A card's memory a node may claim (16 TiB, far past any card); more is clamped (the pick binds it as a 32-bit integer on PostgreSQL). */
export const MAX_VRAM_MB = 16 * 1024 * 1024;
/** How often a tick looks for sweeps left open with every job ended (a replica died between a last job's commit and its sweep's settle). */
const SETTLE_IDLE_EVERY_MS = 5_000;
/** Job ids one heartbeat may name: far above what a node can hold (MAX_SLOTS × its prefetch, in batches); an untrusted node's longer list is cut. */
export const MAX_HEARTBEAT_JOBS = 16_384;

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
  private readonly engine: HubDeps['engine'];
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  /** One line per node: its messages, results, fills and mark-down never interleave. */
  /** Each node's line; one event-loop turn starts at most ~10 ms of their work (a round of 1,000 results otherwise blocks the loop for 100+ ms). */
  private readonly lines = new KeyedQueue(new LoopSlices(10));
  /** Nodes with a fill queued in their line and not yet started: one more request joins it. */
  private readonly fillQueued = new Map<string, Promise<void>>();
  /** The tick and node messages: database failures are shown in /readyz. */
  readonly health: LoopHealth;
  private readonly stopping = new AbortController();
  private ticking: Promise<void> | undefined;
  /** When the tick last looked for sweeps left open with every job ended (engine.settleIdleSweeps). */
  private idleSweepsAt = 0;
  private waking = false;
  private wakeAgain = false;
  /** Messages and verified results not yet through their node's line (settled() waits for them). */
  private pending = 0;
  private readonly drained = new Set<() => void>();
  /** Result reports: checked, looked for in storage, then recorded. */
  private readonly results: ResultReports;
  /** Nodes whose stream ended, by when they were last heard from. */
  private readonly disconnectedAt = new Map<string, number>();
  private readonly enrolment: NodeEnrolment;
  private readonly dispatcher: NodeDispatch<Session>;
  private readonly holderCounts: HolderCounts;
  /** What each node holds of registry models (Register and Heartbeat). */
  readonly models: NodeModels;
  /** Progress relayed beside the lines, one at a time per node. */
  private readonly progress = new ProgressRelay((nodeId, p) => relayProgress(this.deps, nodeId, p).catch((err: unknown) => this.log.debug({ node: nodeId, err: String(err) }, 'progress not relayed')));

  constructor(
    private readonly deps: HubDeps,
    private readonly opts: HubOptions,
  ) {
    this.engine = deps.engine;
    this.log = deps.log;
    this.models = deps.models ?? new NodeModels(() => this.sessions.keys());
    this.holderCounts = new HolderCounts(deps.engine.modelHolders);
    this.enrolment = new NodeEnrolment({
      nodes: deps.engine.nodes,
      tokens: opts.tokens ?? new NodeTokens({ token: opts.nodeToken }, deps.log),
      log: deps.log,
      refused: (reason) => opts.observer?.refused?.(reason),
    });
    this.health = new LoopHealth(deps.log);
    this.dispatcher = new NodeDispatch<Session>({
      engine: deps.engine,
      placement: deps.placement,
      log: deps.log,
      opts,
      models: async (nodeId) => ({ state: this.models.of(nodeId), holderCounts: await this.holderCounts.get() }),
      leased: (count) => opts.observer?.leased?.(count),
      send: (s, msg) => this.send(s, msg),
    });
    this.results = new ResultReports({
      engine: deps.engine,
      storage: deps.storage,
      log: deps.log,
      attempts: opts.storageAttempts ?? 12,
      signal: this.stopping.signal,
      verified: (nodeId, report) => void this.pend(() => this.recordVerified(nodeId, report)),
      cancel: (nodeId, jobId, reason) => this.cancelOn(nodeId, jobId, reason),
      completed: (renderMs, skipped) => opts.observer?.completed?.(renderMs, skipped),
      refused: (reason) => opts.observer?.resultRefused?.(reason),
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.min(1_000, this.opts.heartbeatMs)));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    for (const s of this.sessions.values()) s.call.end();
    this.sessions.clear();
  }

  /** Settles once every node line is idle and no tick runs (tests and benchmarks). */
  async settled(): Promise<void> {
    do {
      await this.ticking;
      await this.lines.idle();
      if (this.pending) await new Promise<void>((resolve) => this.drained.add(resolve));
      // What the nodes are told waits for the commit of what it tells of.
      await this.engine.committed().catch(() => {});
    } while (this.pending || this.lines.size || this.ticking);
  }

  /** Counts `work` as pending (settled() waits for it) from now until it settles. */
  private pend(work: () => Promise<void>): Promise<void> {
    this.pending++;
    return work().finally(() => {
      if (--this.pending) return;
      for (const wake of this.drained) wake();
      this.drained.clear();
    });
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
   * up retry backoffs). A failure (database busy or away) is logged and shown
   * in /readyz; the next tick is the retry. A tick still running when the
   * next is due is not doubled: the caller gets the one under way.
   */
  tick(): Promise<void> {
    this.ticking ??= this.tickNow().then(
      () => this.health.ok('tick'),
      (err: unknown) => void this.health.failed('tick', err),
    ).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tickNow(): Promise<void> {
    const now = Date.now();
    await this.dropRevoked();
    const downs: Promise<void>[] = [];
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastSeen > this.opts.nodeTimeoutMs) downs.push(this.lines.run(s.nodeId, () => this.nodeDown(s, `silent for ${now - s.lastSeen} ms`)));
    }
    // A node whose stream broke gets the same timeout to come back before its work moves.
    for (const [nodeId, since] of [...this.disconnectedAt]) {
      if (now - since > this.opts.nodeTimeoutMs) downs.push(this.lines.run(nodeId, () => this.markDownIfGone(nodeId, since, `disconnected for ${now - since} ms`)));
    }
    await Promise.all(downs);
    await this.deps.placement.relaxExclusions();
    const expired = await this.engine.expireLeases();
    if (expired.length) this.log.warn({ jobs: expired.length, nodes: [...new Set(expired.map((j) => j.node_id))] }, 'leases expired, jobs requeued');
    if (now - this.idleSweepsAt >= (this.opts.settleIdleEveryMs ?? SETTLE_IDLE_EVERY_MS)) {
      this.idleSweepsAt = now;
      // A failure here must not keep the tick from filling nodes: the next look is the retry.
      const settled = await this.engine.settleIdleSweeps().catch((err: unknown) => void this.log.warn({ err: String(err) }, 'open sweeps with every job ended not settled'));
      if (settled) this.log.warn({ sweeps: settled }, 'sweeps with every job ended were still open: settled');
      // On PostgreSQL a replica that died while storing a big sweep in parts leaves it to the others.
      const ended = await this.engine.endSweepsStoredShort().catch((err: unknown) => void this.log.warn({ err: String(err) }, 'sweeps stored short not ended'));
      if (ended?.length) this.log.warn({ sweeps: ended }, 'sweeps whose storing stopped part way (the coordinator storing them is gone) are cancelled; their finished images are kept');
    }
    await this.fillAll();
  }

  /**
   * Sends each connected node (or just `only`, after it reported a result) as
   * many jobs as its free prefetch capacity allows. The fills run in the
   * nodes' lines; the promise (which never rejects: a fill's failure shows in
   * `health`) resolves when they have.
   */
  dispatch(only?: string): Promise<void> {
    // Called from an API request too: the fills need not commit one by one (what a node is told waits for the commit anyway).
    return this.engine.batched(() => (only === undefined ? this.fillAll() : this.fill(only, { now: Date.now() })));
  }

  /**
   * Another replica queued work (a new sweep, jobs back in the queue): fill
   * this replica's nodes. Wakes that come while a fill of every node runs
   * make one more after it, however many they are.
   */
  wake(): void {
    if (this.waking) {
      this.wakeAgain = true;
      return;
    }
    this.waking = true;
    void (async () => {
      do {
        this.wakeAgain = false;
        await this.fillAll();
      } while (this.wakeAgain && !this.stopping.signal.aborted);
      this.waking = false;
    })();
  }

  /** Fills every node that may have room (a node its last fill left at capacity is passed by: NodeDispatch.isFull). */
  private async fillAll(): Promise<void> {
    const pass: FillPass = { now: Date.now() };
    await Promise.all([...this.sessions.keys()].filter((nodeId) => !this.dispatcher.isFull(nodeId)).map((nodeId) => this.fill(nodeId, pass)));
  }

  /** Queues a fill of one node in its line; a fill already queued there (not yet started) serves this request too. */
  private fill(nodeId: string, pass: FillPass): Promise<void> {
    const queued = this.fillQueued.get(nodeId);
    if (queued) return queued;
    const run = this.lines.run(nodeId, async () => {
      this.fillQueued.delete(nodeId);
      const s = this.sessions.get(nodeId);
      if (s) await this.dispatcher.fill(s, pass);
    });
    const done = run.then(
      () => this.health.ok('dispatch'),
      (err: unknown) => void this.health.failed('dispatch', err),
    );
    this.fillQueued.set(nodeId, done);
    return done;
  }

  cancelJobs(jobs: JobRow[], reason: string): void {
    for (const j of jobs) for (const nodeId of [j.node_id, j.copy_node_id]) this.cancelOn(nodeId, j.id, reason);
  }

  private cancelOn(nodeId: string | null, jobId: string, reason: string): void {
    const s = nodeId ? this.sessions.get(nodeId) : undefined;
    if (!s) return;
    this.send(s, cancel(jobId, reason));
    this.dispatcher.mayHaveRoom(s.nodeId);
  }

  /** What the hub tells a node, once what it tells of is committed (engine.afterCommit). */
  private send(s: Session, msg: ResponseInit): void {
    this.engine.afterCommit(() => this.write(s, msg));
  }

  private write(s: Session, msg: ResponseInit): void {
    try {
      s.call.write(create(ConnectResponseSchema, { msg }));
    } catch (err) {
      // A stream that just broke: the node hears again when it reconnects (reconcile).
      this.log.debug({ node: s.nodeId, err: String(err) }, 'write to a closed node stream');
    }
  }

  /**
   * A result whose image storage confirmed, recorded in the node's line; a
   * database that is away is asked again (with backoff) while the hub runs:
   * a finished image is never dropped for a passing failure.
   */
  private async recordVerified(nodeId: string, report: JobCompleted): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const accepted = await this.lines.run(nodeId, () => this.results.finish(nodeId, report));
        this.health.ok('results');
        if (accepted) void this.dispatch(nodeId);
        return;
      } catch (err) {
        if (!this.engine.isTransient(err) || this.stopping.signal.aborted) {
          // Dropped: a later report of the same result is looked at afresh.
          this.results.forget(nodeId, report.jobId);
          this.log.error({ err: String(err), node: nodeId, job: report.jobId }, 'result not recorded');
          return;
        }
        const failures = this.health.failed('results', err);
        await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** Math.min(failures, 7))).unref());
      }
    }
  }

  /**
   * The store lost writes this hub acted on (a SQLite turn that failed to
   * commit; what it told nodes of them was never sent): every node
   * reconnects and reconciles with what is stored.
   */
  resync(err: unknown): void {
    this.health.failed('inbox', err);
    this.log.error({ err: String(err), nodes: this.sessions.size }, 'store lost a turn of writes: every node reconnects and reconciles');
    for (const s of [...this.sessions.values()]) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'coordinator store failed; reconnect' });
  }

  /** Sessions whose token was revoked (removed from the tokens file) are dropped; the node's reconnect is then refused. */
  private async dropRevoked(): Promise<void> {
    if (!this.enrolment.tokensChanged()) return;
    for (const s of [...this.sessions.values()]) {
      if (this.enrolment.enrolled(s.tokenName)) continue;
      this.log.warn({ node: s.nodeId, tokenName: s.tokenName }, 'node token revoked: session closed');
      this.sessions.delete(s.nodeId);
      this.models.connectedChanged();
      this.holderCounts.invalidate();
      s.call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'node token revoked' });
      // Its work moves as a disconnected node's does (not at all if it comes back with another token in time).
      this.disconnectedAt.set(s.nodeId, s.lastSeen);
      await this.lines.run(s.nodeId, () => this.engine.markNodeOfflineIfOurs(s.nodeId)).catch((err: unknown) => this.log.warn({ node: s.nodeId, err: String(err) }, 'node not marked offline'));
    }
  }

  /** grpc-js handler for NodeService.Connect. */
  handle = (call: NodeStream): void => {
    // A stopping coordinator takes no new node: it would lease it work it will not see finished.
    if (this.stopping.signal.aborted) return void call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'coordinator stopping' });
    if (!this.enrolment.admit(call)) return;
    let session: Session | undefined;
    /** The stream ended (a register still in its line then must not leave a session behind). */
    let ended = false;
    // The stream's messages in order: each waits for the one before, then runs in its node's line.
    let previous: Promise<void> = Promise.resolve();
    call.on('data', (req: ConnectRequest) => {
      // Heard from now, whatever the line is waiting on: a slow database must not make a live node look silent.
      if (session) session.lastSeen = Date.now();
      // Progress is cosmetic and frequent: relayed beside the line, never behind a slow write.
      if (req.msg.case === 'progress' && session && this.sessions.get(session.nodeId) === session) {
        const relaying = this.progress.offer(session.nodeId, req.msg.value);
        if (relaying) void this.pend(() => relaying);
        return;
      }
      const before = previous;
      const set = (s: Session | undefined) => {
        session = s;
        if (ended) close(); // it closed while its register ran
      };
      previous = this.pend(() => before.then(() => this.receive(call, () => session, set, req)));
    });
    const close = () => {
      ended = true;
      if (!session || this.sessions.get(session.nodeId) !== session) return;
      const gone = session;
      this.sessions.delete(gone.nodeId);
      this.models.connectedChanged();
      this.holderCounts.invalidate();
      this.disconnectedAt.set(gone.nodeId, gone.lastSeen);
      this.log.info({ node: gone.nodeId }, 'node disconnected; its work moves unless it returns within the node timeout');
      session = undefined;
      void this.lines.run(gone.nodeId, async () => {
        // Back already (a new session registered in its line before this ran): it stays online.
        if (!this.sessions.has(gone.nodeId)) await this.engine.markNodeOfflineIfOurs(gone.nodeId);
      }).catch((err: unknown) => this.log.warn({ node: gone.nodeId, err: String(err) }, 'node not marked offline'));
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
  };

  /**
   * One message from a stream, in its node's line. A message that fails for
   * its own reasons is logged and dropped; one the database failed is logged
   * and shown in /readyz (a heartbeat comes again, a failure report is
   * re-sent by the node's lease running out).
   */
  private async receive(call: NodeStream, get: () => Session | undefined, set: (s: Session | undefined) => void, req: ConnectRequest): Promise<void> {
    const m = req.msg;
    const nodeId = m.case === 'register' ? m.value.nodeId : get()?.nodeId;
    try {
      if (nodeId === undefined) throw new Error(`message ${m.case} before register`);
      if (m.case === 'register' && !/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new Error('invalid node id');
      const reported = await this.lines.run(nodeId, async () => {
        const session = await this.onMessage(call, get(), req);
        set(session);
        return session && m.case === 'failed' ? session.nodeId : undefined;
      });
      this.health.ok('inbox');
      if (reported !== undefined) void this.dispatch(reported);
    } catch (err) {
      if (this.engine.isTransient(err)) this.health.failed('inbox', err);
      this.log.error({ err: String(err), node: nodeId }, 'node message failed');
    }
  }

  /** A node that stopped heartbeating: its work goes back to the queue now. */
  private async nodeDown(s: Session, why: string): Promise<void> {
    if (this.sessions.get(s.nodeId) !== s) return; // it left or came back on another stream meanwhile
    if (Date.now() - s.lastSeen <= this.opts.nodeTimeoutMs) return; // heard from while this waited in its line
    this.sessions.delete(s.nodeId);
    this.models.connectedChanged();
    this.holderCounts.invalidate();
    try {
      s.call.end();
    } catch {
      /* the stream may already be gone */
    }
    await this.markDown(s.nodeId, why);
  }

  /** A node still away (no session, not re-disconnected since) once its timeout ran out. */
  private async markDownIfGone(nodeId: string, since: number, why: string): Promise<void> {
    if (this.sessions.has(nodeId) || this.disconnectedAt.get(nodeId) !== since) return;
    await this.markDown(nodeId, why);
  }

  /** Requeues what a node held and tells the world it is down. */
  private async markDown(nodeId: string, why: string): Promise<void> {
    this.disconnectedAt.delete(nodeId);
    let released: JobRow[] | undefined;
    try {
      released = await this.engine.markNodeDownIfOurs(nodeId, why);
    } catch (err) {
      // Tried again at the next tick (long overdue), unless it registers first.
      if (!this.sessions.has(nodeId)) this.disconnectedAt.set(nodeId, 0);
      throw err;
    }
    if (!released) return this.log.info({ node: nodeId, why }, 'node serves another coordinator replica now: its work stays with it');
    this.log.warn({ node: nodeId, why, requeued: released.length }, 'node marked down, jobs requeued');
    this.opts.observer?.nodeDown?.(released.length);
  }

  private async onMessage(call: Session['call'], session: Session | undefined, req: ConnectRequest): Promise<Session | undefined> {
    const m = req.msg;
    if (m.case === 'register') return this.register(call, m.value);
    if (!session) throw new Error(`message ${m.case} before register`);
    if (this.sessions.get(session.nodeId) !== session) return undefined; // marked down meanwhile: it must re-register
    session.lastSeen = Date.now();
    switch (m.case) {
      case 'heartbeat': {
        const running = [...new Set(m.value.runningJobIds)];
        if (running.length > MAX_HEARTBEAT_JOBS) {
          this.log.warn({ node: session.nodeId, named: running.length, max: MAX_HEARTBEAT_JOBS }, 'heartbeat names more jobs than a node can hold: the rest ignored');
          running.length = MAX_HEARTBEAT_JOBS;
        }
        // What it runs that is no longer its own (ended through another replica, say) it is told to stop.
        for (const id of await this.engine.heartbeat(session.nodeId, running, this.opts.leaseMs)) this.cancelOn(session.nodeId, id, 'no longer this node\'s job');
        this.dispatcher.heard(session, running.length);
        if (m.value.models) await this.updateModels(session.nodeId, m.value.models);
        break;
      }
      case 'progress':
        await relayProgress(this.deps, session.nodeId, m.value);
        break;
      case 'completed':
        await this.results.report(session.nodeId, m.value);
        break;
      case 'failed':
        await this.fail(session, m.value);
        break;
      case 'availability':
        await this.availability(session, m.value);
        break;
      default:
        break;
    }
    return session;
  }

  /** What a node reports of its model cache: kept here (the dashboard) and written where every replica's pick reads it. */
  private async updateModels(nodeId: string, state: RequestOf<'register'>['models']): Promise<void> {
    this.models.update(nodeId, state);
    const held = this.models.of(nodeId);
    await this.holderCounts.setHeld(nodeId, held ? [...held.cached, ...(held.loaded ? [held.loaded] : [])] : []);
  }

  /** A node leaves or rejoins the farm; what it handed back is requeued now, not when its lease runs out. */
  private async availability(s: Session, a: Availability): Promise<void> {
    const was = s.sleep;
    s.sleep = sleepOf(a);
    const released = new Set(a.releasedJobIds);
    if (released.size) await this.release(s, (await this.engine.leasedTo(s.nodeId)).filter((j) => released.has(j.id)), 'node left the farm', true);
    if (!was !== !s.sleep) this.log.info({ node: s.nodeId, ...(s.sleep ?? {}), released: released.size }, s.sleep ? 'node sleeping: no work sent to it' : 'node takes work again');
    if (!s.sleep) void this.dispatch(s.nodeId);
  }

  /**
   * Jobs a node no longer holds: its leases go back to the queue, its straggler
   * copies end. `left`: handed back on leaving the farm, which costs the job no attempt.
   */
  private async release(s: Session, jobs: JobRow[], reason: string, left = false): Promise<void> {
    const main = jobs.filter((j) => j.node_id === s.nodeId).map((j) => j.id);
    if (main.length) await this.engine.requeue(main, reason, { refundAttempt: left });
    for (const j of jobs.filter((j) => j.copy_node_id === s.nodeId)) await this.engine.dropCopy(j.id);
  }

  private async fail(session: Session, v: RequestOf<'failed'>): Promise<void> {
    const node = { id: session.nodeId, vramMb: session.caps.vramMb };
    if (v.modelUnavailable && this.deps.placement.modelUnavailable) {
      const m = await this.deps.placement.modelUnavailable(v.jobId, node, { error: v.error, logTail: v.logTail, outOfMemory: false });
      this.log.warn({ node: session.nodeId, job: v.jobId, counted: m.counted, error: v.error }, 'registry model unavailable on node: job goes elsewhere');
      if (!m.counted) return;
    }
    const r = await this.deps.placement.recordFailure(v.jobId, node, { error: v.error, logTail: v.logTail, outOfMemory: v.outOfMemory });
    if (!r) return;
    const { job } = r;
    this.log.warn({ node: session.nodeId, job: job.id, attempts: job.attempts, state: job.state, oom: v.outOfMemory, error: v.error }, 'job failed');
    if (r.blocklisted) this.log.warn({ sweep: job.sweep_id, node: session.nodeId }, 'node blocklisted for this sweep after repeated failures');
    if (r.noCapableNode !== undefined) this.log.error({ sweep: job.sweep_id, failed: r.noCapableNode }, 'sweep failed: no capable node left');
    if (r.tooBigForEveryCard) this.log.warn({ job: job.id, minVramMb: job.min_vram_mb }, 'job failed: out of memory on every node');
  }

  private async register(call: Session['call'], reg: RequestOf<'register'>): Promise<Session | undefined> {
    const caps = reg.capabilities ?? ({} as Capabilities);
    const nodeId = reg.nodeId;
    if (!(await this.enrolment.mayUseNodeId(call, nodeId))) return undefined;
    const claimed = Math.max(1, caps.slots || 1);
    if (claimed > MAX_SLOTS) this.log.warn({ node: nodeId, claimed, slots: MAX_SLOTS }, `node claims more than ${MAX_SLOTS} render slots: clamped to ${MAX_SLOTS}`);
    const vramMb = Number(caps.vramMb);
    if (vramMb > MAX_VRAM_MB) this.log.warn({ node: nodeId, claimed: vramMb, vramMb: MAX_VRAM_MB }, `node claims more than ${MAX_VRAM_MB} MB of VRAM: clamped`);
    const s: Session = {
      nodeId,
      name: reg.name || nodeId,
      caps: { backends: [...caps.backends], models: [...caps.models], vramMb: Math.min(vramMb, MAX_VRAM_MB) },
      slots: Math.min(claimed, MAX_SLOTS),
      lastSeen: Date.now(),
      call,
      tokenName: this.enrolment.token(call).name,
      sleep: reg.availability ? sleepOf(reg.availability) : undefined,
    };
    const previous = this.sessions.get(nodeId);
    if (previous && previous.call !== call) previous.call.end();
    this.sessions.set(nodeId, s);
    this.dispatcher.mayHaveRoom(nodeId);
    this.models.connectedChanged();
    this.disconnectedAt.delete(nodeId);
    try {
      return await this.registered(s, reg);
    } catch (err) {
      // Half registered is not registered: the node is told, and reconnects for a clean try.
      if (this.sessions.get(nodeId) === s) {
        this.sessions.delete(nodeId);
        this.models.connectedChanged();
        this.disconnectedAt.set(nodeId, s.lastSeen);
        s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'registration failed; reconnect' });
      }
      throw err;
    }
  }

  /** A registering session's store writes, its results and reconcile, then its first fill. */
  private async registered(s: Session, reg: RequestOf<'register'>): Promise<Session> {
    const nodeId = s.nodeId;
    const caps = reg.capabilities ?? ({} as Capabilities);
    this.holderCounts.forget(nodeId); // it may have served another replica since: its holdings are written again
    await this.engine.nodes.upsertNode(nodeId, s.name, { gpuName: caps.gpuName, vramMb: s.caps.vramMb, backends: s.caps.backends, models: s.caps.models, slots: s.slots, ...(caps.executionProvider ? { executionProvider: caps.executionProvider } : {}) });
    await this.updateModels(nodeId, reg.models);
    this.send(s, { case: 'registered', value: { nodeId, heartbeatIntervalMs: this.opts.heartbeatMs, leaseMs: this.opts.leaseMs } });
    // Results first: a job finished while we were apart is done, not lost (and not requeued while its image is looked for).
    const reporting: string[] = [];
    for (const c of reg.recentCompletions) if (await this.results.report(nodeId, c)) reporting.push(c.jobId);
    const requeued = await this.reconcile(s, [...reg.heldJobIds, ...reporting]);
    this.log.info({ node: nodeId, caps: s.caps, slots: s.slots, held: reg.heldJobIds.length }, 'node registered');
    await this.engine.nodes.recordNodeEvent(SUBJECTS.nodeUp, nodeId, { name: s.name });
    // Only what it handed back is news to the other nodes: a thousand nodes reconnecting otherwise fill the whole farm a thousand times.
    void this.dispatch(requeued ? undefined : nodeId);
    return s;
  }

  /**
   * After a (re)connect: jobs the database leases to this node that it no
   * longer holds go back to the queue; jobs it holds that are no longer its
   * own are cancelled on the node, so no image is rendered twice. Returns
   * how many went back to the queue (or lost their straggler copy).
   */
  private async reconcile(s: Session, held: string[]): Promise<number> {
    const heldSet = new Set(held);
    const ours = await this.engine.leasedTo(s.nodeId);
    const lost = ours.filter((j) => !heldSet.has(j.id));
    await this.release(s, lost, 'node reconnected without the job');
    await this.engine.renewLeases(s.nodeId, held, this.opts.leaseMs);
    const oursSet = new Set(ours.map((j) => j.id));
    for (const id of held) if (!oursSet.has(id)) this.send(s, cancel(id, 'lease no longer held'));
    return lost.length;
  }
}
