/** The Connect stream as the hub uses it, and the messages the hub builds for a node. */
import type * as grpc from '@grpc/grpc-js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ConnectRequest, ConnectResponse, ConnectResponseSchema } from '@nightshift/proto';
import type { JobRow } from './store.js';

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

/** One coordinator → node message, before it is wrapped in a ConnectResponse. */
export type ResponseInit = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

/** A node message of one kind (`register`, `failed`, ...), as its payload. */
export type RequestOf<K extends NonNullable<ConnectRequest['msg']['case']>> = Extract<ConnectRequest['msg'], { case: K }>['value'];

/** The lease of `job` as the node receives it. */
export function assignment(job: JobRow): ResponseInit {
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
      // Registry models only: the node pulls models/{hash}/ into its cache when it lacks it.
      modelHash: job.model_hash ?? '',
    },
  };
}

/** Tells a node to stop working on a job it holds. */
export function cancel(jobId: string, reason: string): ResponseInit {
  return { case: 'cancel', value: { jobId, reason } };
}
