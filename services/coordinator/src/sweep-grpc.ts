/** SweepService over gRPC: the same operations as HTTP, for programs. */
import * as grpc from '@grpc/grpc-js';
import type { Config } from '@nightshift/common';
import { create } from '@bufbuild/protobuf';
import { GrpcError, WatchSweepResponseSchema, type HandlersOf, type SweepService } from '@nightshift/proto';
import { SpecError } from '@nightshift/sweep';
import type { StoreEngine } from './store-engine/engine.js';
import type { GrpcDeps } from './deps.js';
import { cancelSweep, submitSweep, sweepView, type SweepView } from './sweeps.js';
import { specWildcards } from './wildcards-store.js';
import { advertisedBy, specModel } from './sweep-model.js';
import { identify, mayUse, ownerFilter, type Caller } from './callers.js';
import { QuotaExceeded } from './quota.js';
import { mayUseWildcard } from './wildcard-owners.js';
import { sweepCostView } from './sweep-cost.js';

const FINAL = new Set(['done', 'failed', 'cancelled']);

function toProto(v: SweepView) {
  const { cancelled: _cancelled, ...counts } = v.counts;
  return { id: v.id, name: v.name, status: v.status, counts, total: v.total, priority: v.priority, createdAtMs: BigInt(Date.parse(v.createdAt)), backend: v.backend };
}

/** GetSweep's `cost`: GET /api/sweeps/:id's figures, with "not measured" as unset kwh and cost (never 0). */
async function costProto(deps: SweepServiceDeps, id: string) {
  const v = sweepCostView(await deps.engine.costs.sweepSums(id), deps.config.NIGHTSHIFT_ENERGY_PRICE);
  const opt = (x: number | null) => (x === null ? undefined : x);
  return { renders: v.renders, gpuHours: v.gpuHours, measuredRenders: v.measuredRenders, kwh: opt(v.kWh), cost: opt(v.cost), pricePerKwh: opt(v.pricePerKwh), energy: v.energy };
}

/** The sweep's view if `caller` may see it; another user's is NOT_FOUND, like a missing one. */
async function viewOf(deps: GrpcDeps, id: string, caller: Caller): Promise<SweepView> {
  const row = await deps.engine.getSweep(id);
  if (!row || !mayUse(caller, row.owner)) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${id}`);
  return sweepView(deps, row);
}

/** SweepService knows its caller as HTTP does (callers.ts): `authorization: Bearer TOKEN-OR-KEY` metadata. */
async function authorize(deps: GrpcDeps, meta: grpc.Metadata): Promise<Caller> {
  const caller = await identify(deps.engine, deps.config.NIGHTSHIFT_API_TOKEN, String(meta.get('authorization')[0] ?? ''));
  if (!caller) throw new GrpcError(grpc.status.UNAUTHENTICATED, 'missing, wrong or revoked API token or key');
  return caller;
}

/** GrpcDeps plus what GetSweep's cost reads: the energy price. */
export type SweepServiceDeps = GrpcDeps & { config: Pick<Config, 'NIGHTSHIFT_ENERGY_PRICE'> };

/** Every handler's writes commit before it answers (on SQLite none joins the node hub's turn: StoreEngine.unbatched). */
function unbatchedHandlers<H extends object>(engine: Pick<StoreEngine, 'unbatched'>, handlers: H): H {
  const wrapped: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(handlers) as [string, (...args: unknown[]) => unknown][]) wrapped[name] = (...args: unknown[]) => engine.unbatched(() => handler(...args));
  return wrapped as H;
}

export function sweepHandlers(deps: SweepServiceDeps): HandlersOf<typeof SweepService> {
  return unbatchedHandlers(deps.engine, {
    async submitSweep(req, call) {
      const caller = await authorize(deps, call.metadata);
      let input: unknown;
      try {
        input = JSON.parse(req.specJson);
      } catch {
        throw new GrpcError(grpc.status.INVALID_ARGUMENT, 'spec_json is not valid JSON');
      }
      try {
        const nodes = await deps.engine.nodes.listNodes();
        const registry = await specModel({ storage: deps.storage ?? {}, advertised: advertisedBy({ listNodes: () => nodes }) }, input);
        return await submitSweep(deps, input, await specWildcards(deps.storage ?? {}, input, mayUseWildcard(deps.engine, caller)), registry, caller);
      } catch (err) {
        if (err instanceof SpecError) throw new GrpcError(grpc.status.INVALID_ARGUMENT, err.message);
        if (err instanceof QuotaExceeded) throw new GrpcError(grpc.status.RESOURCE_EXHAUSTED, err.message);
        throw err;
      }
    },
    async getSweep(req, call) {
      const sweep = toProto(await viewOf(deps, req.id, await authorize(deps, call.metadata)));
      return { sweep, cost: await costProto(deps, req.id) };
    },
    async listSweeps(_req, call) {
      const caller = await authorize(deps, call.metadata);
      const sweeps = [];
      for (const r of await deps.engine.listings.listSweeps(undefined, ownerFilter(caller))) sweeps.push(toProto(await sweepView(deps, r)));
      return { sweeps };
    },
    async cancelSweep(req, call) {
      const caller = await authorize(deps, call.metadata);
      await viewOf(deps, req.id, caller);
      if (!(await cancelSweep(deps, req.id))) throw new GrpcError(grpc.status.NOT_FOUND, `no such sweep: ${req.id}`);
      return { sweep: toProto(await viewOf(deps, req.id, caller)) };
    },
    watchSweep(call) {
      void watch(deps, call);
    },
  } satisfies HandlersOf<typeof SweepService>);
}

/** WatchSweep: the sweep's view now and at every change, until it is final, the client goes, or the caller's key is revoked. */
async function watch(deps: GrpcDeps, call: Parameters<HandlersOf<typeof SweepService>['watchSweep']>[0]): Promise<void> {
  const fail = (code: grpc.status, details: string) => call.emit('error', { code, details });
  let caller: Caller;
  try {
    caller = await authorize(deps, call.metadata);
  } catch (err) {
    fail(grpc.status.UNAUTHENTICATED, (err as Error).message);
    return;
  }
  const id = call.request.id;
  const row = await deps.engine.getSweep(id).catch(() => undefined);
  if (!row || !mayUse(caller, row.owner)) {
    fail(grpc.status.NOT_FOUND, `no such sweep: ${id}`);
    return;
  }
  let ended = false;
  const stop = () => {
    ended = true;
    unsubscribe();
    unClose();
  };
  const end = () => {
    if (ended) return;
    stop();
    call.end();
  };
  // One send at a time, in order: a change while one is being read is sent after it (once, however many came).
  let sending = false;
  let again = false;
  const send = async () => {
    if (sending) {
      again = true;
      return;
    }
    sending = true;
    try {
      do {
        again = false;
        if (ended) return;
        // Asked again at every update (no cache): a key revoked mid-watch ends it before anything more is sent.
        const now = await identify(deps.engine, deps.config.NIGHTSHIFT_API_TOKEN, String(call.metadata.get('authorization')[0] ?? ''));
        if (ended) return;
        if (now?.user !== caller.user || now.admin !== caller.admin) {
          stop();
          fail(grpc.status.UNAUTHENTICATED, 'missing, wrong or revoked API token or key');
          return;
        }
        const v = await viewOf(deps, id, caller);
        if (ended) return;
        call.write(create(WatchSweepResponseSchema, { sweep: toProto(v) }));
        if (FINAL.has(v.status)) end();
      } while (again);
    } catch (err) {
      if (ended) return;
      stop();
      fail(err instanceof GrpcError ? err.code : grpc.status.UNAVAILABLE, (err as Error).message);
    } finally {
      sending = false;
    }
  };
  const unsubscribe = deps.live.subscribe((e) => {
    if (e.type === 'sweep' && e.sweepId === id) void send();
  });
  // A shutdown ends the watch (the client sees the stream close and may reconnect elsewhere).
  const unClose = deps.live.onClose(end);
  call.on('cancelled', () => {
    if (!ended) stop();
  });
  await send();
}
