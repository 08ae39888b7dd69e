/**
 * The node's end of NodeService.Connect. Keeps one stream open, reconnecting
 * with backoff after any loss; registers with the jobs it still holds so the
 * coordinator can reconcile; heartbeats; and queues reports while offline so
 * a finished image is always reported once the coordinator is reachable.
 * With several coordinator addresses (coordinator-addresses.ts) each
 * reconnect dials the next one, so a node follows a replica that takes over.
 */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, createClient, NodeService, type ClientOf, type ConnectRequest, type ConnectResponse, type JobAssignment } from '@nightshift/proto';
import type { Logger } from '@nightshift/common';
import type { Report } from './worker.js';
import type { ModelCacheStateInit } from './model-pull.js';
import { CoordinatorAddresses, parseCoordinatorAddresses, type CoordinatorTarget, type Lookup } from './coordinator-addresses.js';

type RequestInit = NonNullable<MessageInitShape<typeof ConnectRequestSchema>['msg']>;

/** Whether the node takes work, as the coordinator is told (proto Availability, less the released jobs). */
export type AvailabilityReport = { accepting: true } | { accepting: false; reason: string; untilMs: number; untilLocal: string };

export interface ConnectionOptions {
  /** NIGHTSHIFT_COORDINATOR: host:port, or several comma-separated (validated here: the constructor throws). */
  address: string;
  /** Resolves host names in `address` (tests inject one); dns.promises.lookup by default. */
  lookup?: Lookup;
  nodeId: string;
  name: string;
  capabilities: { gpuName: string; vramMb: number; backends: string[]; models: string[]; slots: number; executionProvider?: string; driverVersion?: string };
  token?: string | undefined;
  /** TLS (tls.ts grpcClientCredentials); insecure when absent. */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Keepalive ping interval: how soon a dead link is noticed (about twice this). */
  keepaliveMs?: number;
  heldJobIds: () => string[];
  /** The node's model cache (model-pull.ts): sent on Register and on every Heartbeat. */
  modelState?: () => ModelCacheStateInit;
  onAssign: (job: JobAssignment) => void;
  onCancel: (jobId: string) => void;
  /** The coordinator relays a pause or resume by hand. */
  onSetPaused?: (paused: boolean) => void;
  log: Logger;
}

export class Connection {
  private client: ClientOf<typeof NodeService> | undefined;
  private readonly addresses: CoordinatorAddresses;
  /** The coordinator dialled last, and the channel to it (kept while the address stays the same). */
  private target: CoordinatorTarget | undefined;
  /** Jobs listed in the last Register, for the log line that says which coordinator took them. */
  private heldAtRegister = 0;
  private stream: grpc.ClientDuplexStream<ConnectRequest, ConnectResponse> | undefined;
  private registered = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** Results waiting for a live stream; progress is dropped instead (it is only cosmetic). */
  private readonly pending: Report[] = [];
  /** Results sent lately, re-sent at every (re)connect: a write just before a break can be lost. */
  private readonly recent: { at: number; value: Extract<Report, { case: 'completed' }>['value'] }[] = [];
  /** Sent with every register, so a reconnecting node that is asleep gets no work. */
  private availability: AvailabilityReport = { accepting: true };
  onRegistered: (() => void) | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    this.addresses = new CoordinatorAddresses(parseCoordinatorAddresses(opts.address), { log: opts.log, lookup: opts.lookup });
  }

  /** The channel to `target`: the current one when the address is unchanged, else a new one. */
  private dial(target: CoordinatorTarget): ClientOf<typeof NodeService> {
    if (this.client && this.target?.address === target.address) return this.client;
    this.client?.close();
    this.target = target;
    const keepalive = this.opts.keepaliveMs ?? 5_000;
    // Dialled by IP after a lookup: TLS still checks the name that was configured, unless one is set.
    const named = target.serverName && !this.opts.channelOptions?.['grpc.ssl_target_name_override'] ? { 'grpc.ssl_target_name_override': target.serverName, 'grpc.default_authority': target.serverName } : {};
    this.client = createClient(NodeService, target.address, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      ...this.opts.channelOptions,
      ...named,
      'grpc.keepalive_time_ms': keepalive,
      'grpc.keepalive_timeout_ms': keepalive,
      'grpc.keepalive_permit_without_calls': 1,
      // Reconnect attempts are paced by open()'s own backoff, not grpc-js's longer default one.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 5_000,
    });
    return this.client;
  }

  get connected(): boolean {
    return this.registered;
  }

  start(): void {
    this.open();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    this.stream?.end();
    this.client?.close();
  }

  report(r: Report): void {
    if (r.case === 'completed') {
      const now = Date.now();
      this.recent.push({ at: now, value: r.value });
      while (this.recent.length > 256 || (this.recent[0] && now - this.recent[0].at > 10 * 60_000)) this.recent.shift();
    }
    if (this.registered && this.stream) {
      this.write(r);
    } else if (r.case !== 'progress') {
      this.pending.push(r);
    }
  }

  /**
   * Tells the coordinator whether the node takes work and which jobs it
   * handed back. Offline, only the state is kept: the next register lists
   * what is still held, and the coordinator requeues the rest.
   */
  setAvailability(a: AvailabilityReport, releasedJobIds: string[] = []): void {
    this.availability = a;
    if (this.registered && this.stream) this.write({ case: 'availability', value: { ...availabilityInit(a), releasedJobIds } });
  }

  /** Hands jobs back without changing the state (a job assigned after the node left). */
  release(jobIds: string[]): void {
    this.setAvailability(this.availability, jobIds);
  }

  private models(): { models?: ModelCacheStateInit } {
    return this.opts.modelState ? { models: this.opts.modelState() } : {};
  }

  private write(msg: RequestInit): void {
    this.stream?.write(create(ConnectRequestSchema, { msg }));
  }

  private open(): void {
    if (this.closed) return;
    void this.addresses.next().then((target) => {
      if (this.closed) return;
      if (target) this.openStream(target);
      else this.retry('no coordinator address resolved', undefined);
    });
  }

  /** After a failed attempt: the next address, after a backoff that grows over every address tried. */
  private retry(why: string, target: CoordinatorTarget | undefined): void {
    this.failures++;
    const delay = Math.min(5_000, 250 * 2 ** Math.min(this.failures - 1, 6)) * (0.75 + Math.random() * 0.5);
    if (this.failures === 1 || this.failures % 10 === 0) this.opts.log.warn({ why, coordinator: target?.address, attempt: this.failures, delayMs: Math.round(delay) }, 'coordinator connection lost, reconnecting');
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private openStream(target: CoordinatorTarget): void {
    const meta = new grpc.Metadata();
    if (this.opts.token) meta.set('authorization', `Bearer ${this.opts.token}`);
    // Lets the coordinator name the node when it refuses its token.
    meta.set('x-nightshift-node', this.opts.nodeId);
    const stream = this.dial(target).connect(meta);
    this.stream = stream;
    const c = this.opts.capabilities;
    const held = this.opts.heldJobIds();
    this.heldAtRegister = held.length;
    this.write({
      case: 'register',
      value: {
        nodeId: this.opts.nodeId,
        name: this.opts.name,
        capabilities: { gpuName: c.gpuName, vramMb: BigInt(c.vramMb), backends: c.backends, models: c.models, slots: c.slots, executionProvider: c.executionProvider ?? '', driverVersion: c.driverVersion ?? '' },
        heldJobIds: held,
        recentCompletions: this.recent.map((r) => r.value),
        availability: availabilityInit(this.availability),
        ...this.models(),
      },
    });
    stream.on('data', (res: ConnectResponse) => this.onMessage(res));
    let done = false;
    const lost = (why: string) => {
      if (done) return;
      done = true;
      this.registered = false;
      clearInterval(this.heartbeat);
      if (this.stream === stream) this.stream = undefined;
      if (this.closed) return;
      this.retry(why, target);
    };
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.UNAUTHENTICATED) this.opts.log.error({ details: err.details }, 'coordinator refused this node');
      lost(err.details || err.message);
    });
    stream.on('end', () => lost('stream ended'));
  }

  private onMessage(res: ConnectResponse): void {
    const m = res.msg;
    switch (m.case) {
      case 'registered': {
        this.registered = true;
        this.failures = 0;
        this.opts.log.info({ nodeId: m.value.nodeId, leaseMs: m.value.leaseMs, coordinator: this.target?.address, entry: this.target?.entry, held: this.heldAtRegister }, 'registered with coordinator');
        clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.write({ case: 'heartbeat', value: { runningJobIds: this.opts.heldJobIds(), ...this.models() } }), m.value.heartbeatIntervalMs || 2_000);
        // Completions already travelled in the Register message (recent); send only failures.
        for (const r of this.pending.splice(0)) if (r.case !== 'completed') this.report(r);
        this.onRegistered?.();
        break;
      }
      case 'assign':
        this.opts.onAssign(m.value);
        break;
      case 'cancel':
        this.opts.onCancel(m.value.jobId);
        break;
      case 'setPaused':
        this.opts.onSetPaused?.(m.value.paused);
        break;
      default:
        break;
    }
  }
}

function availabilityInit(a: AvailabilityReport): { accepting: boolean; reason: string; untilMs: bigint; untilLocal: string } {
  return a.accepting ? { accepting: true, reason: '', untilMs: 0n, untilLocal: '' } : { accepting: false, reason: a.reason, untilMs: BigInt(a.untilMs), untilLocal: a.untilLocal };
}
