/** SweepService over gRPC: the same operations as HTTP, for programs. */
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { GrpcError, WatchSweepResponseSchema, type HandlersOf, type SweepService } from '@nightshift/proto';
import { SpecError } from '@nightshift/sweep';
import type { GrpcDeps } from './deps.js';
import { cancelSweep, submitSweep, sweepView, type SweepView } from './sweeps.js';
import { specWildcards } from './wildcards-store.js';
import { advertisedBy, specModel } from './sweep-model.js';

const FINAL = new Set(['done', 'failed', 'cancelled']);

function toProto(v: SweepView) {
  const { cancelled: _cancelled, ...counts } = v.counts;
  return { id: v.id, name: v.name, status: v.status, counts, total: v.total, priority: v.priority, createdAtMs: BigInt(Date.parse(v.createdAt)), backend: v.backend };
}

function viewOf(deps: GrpcDeps, id: string): SweepView {
  const row = deps.store.getSweep(id);
  if (!row) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${id}`);
  return sweepView(deps, row);
}

/** The API token guards SweepService as it guards HTTP: `authorization: Bearer TOKEN` metadata. */
function authorize(deps: GrpcDeps, meta: grpc.Metadata): void {
  const token = deps.config.NIGHTSHIFT_API_TOKEN;
  if (!token) return;
  const given = Buffer.from(String(meta.get('authorization')[0] ?? '').replace(/^Bearer\s+/i, ''));
  const want = Buffer.from(token);
  if (given.length !== want.length || !timingSafeEqual(given, want)) throw new GrpcError(grpc.status.UNAUTHENTICATED, 'missing or wrong API token');
}

export function sweepHandlers(deps: GrpcDeps): HandlersOf<typeof SweepService> {
  return {
    async submitSweep(req, call) {
      authorize(deps, call.metadata);
      let input: unknown;
      try {
        input = JSON.parse(req.specJson);
      } catch {
        throw new GrpcError(grpc.status.INVALID_ARGUMENT, 'spec_json is not valid JSON');
      }
      try {
        const registry = await specModel({ storage: deps.storage ?? {}, advertised: advertisedBy(deps.store) }, input);
        return submitSweep(deps, input, await specWildcards(deps.storage ?? {}, input), registry);
      } catch (err) {
        if (err instanceof SpecError) throw new GrpcError(grpc.status.INVALID_ARGUMENT, err.message);
        throw err;
      }
    },
    async getSweep(req, call) {
      authorize(deps, call.metadata);
      return { sweep: toProto(viewOf(deps, req.id)) };
    },
    async listSweeps(_req, call) {
      authorize(deps, call.metadata);
      return { sweeps: deps.store.listSweeps().map((r) => toProto(sweepView(deps, r))) };
    },
    async cancelSweep(req, call) {
      authorize(deps, call.metadata);
      if (!cancelSweep(deps, req.id)) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${req.id}`);
      return { sweep: toProto(viewOf(deps, req.id)) };
    },
    watchSweep(call) {
      try {
        authorize(deps, call.metadata);
      } catch (err) {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: (err as Error).message });
        return;
      }
      const id = call.request.id;
      if (!deps.store.getSweep(id)) {
        call.emit('error', { code: grpc.status.NOT_FOUND, details: `no such sweep: ${id}` });
        return;
      }
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        unsubscribe();
        unClose();
        call.end();
      };
      const send = () => {
        if (ended) return;
        const v = viewOf(deps, id);
        call.write(create(WatchSweepResponseSchema, { sweep: toProto(v) }));
        if (FINAL.has(v.status)) end();
      };
      const unsubscribe = deps.live.subscribe((e) => {
        if (e.type === 'sweep' && e.sweepId === id) send();
      });
      // A shutdown ends the watch (the client sees the stream close and may reconnect elsewhere).
      const unClose = deps.live.onClose(end);
      call.on('cancelled', () => {
        ended = true;
        unsubscribe();
        unClose();
      });
      send();
    },
  };
}
