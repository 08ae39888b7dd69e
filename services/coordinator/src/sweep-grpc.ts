/** SweepService over gRPC: the same operations as HTTP, for programs. */
import * as grpc from '@grpc/grpc-js';
import type { Config } from '@nightshift/common';
import { create } from '@bufbuild/protobuf';
import { GrpcError, WatchSweepResponseSchema, type HandlersOf, type SweepService } from '@nightshift/proto';
import { SpecError } from '@nightshift/sweep';
import type { GrpcDeps } from './deps.js';
import { cancelSweep, submitSweep, sweepView, type SweepView } from './sweeps.js';
import { specWildcards } from './wildcards-store.js';
import { advertisedBy, specModel } from './sweep-model.js';
import { identify, mayUse, ownerFilter, type Caller } from './callers.js';
import { QuotaExceeded } from './quota.js';
import { mayUseWildcard } from './wildcard-owners.js';
import { costStoreOf } from './store/costs.js';
import { sweepCostView } from './sweep-cost.js';
import type { Store } from './store.js';

const FINAL = new Set(['done', 'failed', 'cancelled']);

function toProto(v: SweepView) {
  const { cancelled: _cancelled, ...counts } = v.counts;
  return { id: v.id, name: v.name, status: v.status, counts, total: v.total, priority: v.priority, createdAtMs: BigInt(Date.parse(v.createdAt)), backend: v.backend };
}

/** GetSweep's `cost`: GET /api/sweeps/:id's figures, with "not measured" as unset kwh and cost (never 0). */
function costProto(deps: SweepServiceDeps, id: string) {
  const v = sweepCostView(costStoreOf(deps.store.db).sweepSums(id), deps.config.NIGHTSHIFT_ENERGY_PRICE);
  const opt = (x: number | null) => (x === null ? undefined : x);
  return { renders: v.renders, gpuHours: v.gpuHours, measuredRenders: v.measuredRenders, kwh: opt(v.kWh), cost: opt(v.cost), pricePerKwh: opt(v.pricePerKwh), energy: v.energy };
}

/** The sweep's view if `caller` may see it; another user's is NOT_FOUND, like a missing one. */
function viewOf(deps: GrpcDeps, id: string, caller: Caller): SweepView {
  const row = deps.store.getSweep(id);
  if (!row || !mayUse(caller, row.owner)) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${id}`);
  return sweepView(deps, row);
}

/** SweepService knows its caller as HTTP does (callers.ts): `authorization: Bearer TOKEN-OR-KEY` metadata. */
function authorize(deps: GrpcDeps, meta: grpc.Metadata): Caller {
  const caller = identify(deps.store, deps.config.NIGHTSHIFT_API_TOKEN, String(meta.get('authorization')[0] ?? ''));
  if (!caller) throw new GrpcError(grpc.status.UNAUTHENTICATED, 'missing, wrong or revoked API token or key');
  return caller;
}

/** GrpcDeps plus what GetSweep's cost reads: the cost table and the energy price. */
export type SweepServiceDeps = GrpcDeps & { store: Pick<Store, 'db'>; config: Pick<Config, 'NIGHTSHIFT_ENERGY_PRICE'> };

export function sweepHandlers(deps: SweepServiceDeps): HandlersOf<typeof SweepService> {
  return {
    async submitSweep(req, call) {
      const caller = authorize(deps, call.metadata);
      let input: unknown;
      try {
        input = JSON.parse(req.specJson);
      } catch {
        throw new GrpcError(grpc.status.INVALID_ARGUMENT, 'spec_json is not valid JSON');
      }
      try {
        const registry = await specModel({ storage: deps.storage ?? {}, advertised: advertisedBy(deps.store) }, input);
        return submitSweep(deps, input, await specWildcards(deps.storage ?? {}, input, mayUseWildcard(deps.store, caller)), registry, caller);
      } catch (err) {
        if (err instanceof SpecError) throw new GrpcError(grpc.status.INVALID_ARGUMENT, err.message);
        if (err instanceof QuotaExceeded) throw new GrpcError(grpc.status.RESOURCE_EXHAUSTED, err.message);
        throw err;
      }
    },
    async getSweep(req, call) {
      const sweep = toProto(viewOf(deps, req.id, authorize(deps, call.metadata)));
      return { sweep, cost: costProto(deps, req.id) };
    },
    async listSweeps(_req, call) {
      const caller = authorize(deps, call.metadata);
      return { sweeps: deps.store.listSweeps(undefined, ownerFilter(caller)).map((r) => toProto(sweepView(deps, r))) };
    },
    async cancelSweep(req, call) {
      const caller = authorize(deps, call.metadata);
      viewOf(deps, req.id, caller);
      if (!cancelSweep(deps, req.id)) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${req.id}`);
      return { sweep: toProto(viewOf(deps, req.id, caller)) };
    },
    watchSweep(call) {
      let caller: Caller;
      try {
        caller = authorize(deps, call.metadata);
      } catch (err) {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: (err as Error).message });
        return;
      }
      const id = call.request.id;
      const row = deps.store.getSweep(id);
      if (!row || !mayUse(caller, row.owner)) {
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
        // Asked again at every update (no cache): a key revoked mid-watch ends it before anything more is sent.
        const now = identify(deps.store, deps.config.NIGHTSHIFT_API_TOKEN, String(call.metadata.get('authorization')[0] ?? ''));
        if (now?.user !== caller.user || now.admin !== caller.admin) {
          ended = true;
          unsubscribe();
          unClose();
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing, wrong or revoked API token or key' });
          return;
        }
        const v = viewOf(deps, id, caller);
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
