/**
 * Fault injection for the fault-tolerance tests, from NIGHTSHIFT_FAULTS:
 *   fail-renders        every render fails (a node whose backend is broken)
 *   fail-first-attempt  a job's first attempt fails, retries succeed (a flaky node)
 *   oom-renders         every render fails with "CUDA out of memory" (a card too small)
 *   render-delay-ms=N   each render takes N ms longer (long enough to interrupt)
 *   die-after-upload=N  the node SIGKILLs itself right after storing its Nth image,
 *                       before it can report it (the upload-then-death race)
 * Render faults wrap the backends; the upload fault wraps storage. The worker
 * knows nothing of them. Unset in production; a node with faults says so
 * loudly in its log.
 */
import { sleep, type Storage } from '@nightshift/common';
import { RenderFailure, type Backend } from './backends/backend.js';

export interface Faults {
  failRenders: boolean;
  failFirstAttempt: boolean;
  oomRenders: boolean;
  renderDelayMs: number;
  dieAfterUpload: number;
}

export function parseFaults(spec: string | undefined): Faults {
  const faults: Faults = { failRenders: false, failFirstAttempt: false, oomRenders: false, renderDelayMs: 0, dieAfterUpload: 0 };
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split('=');
    const count = /^\d+$/.test(value ?? '') ? Number(value) : undefined;
    if (name === 'fail-renders') faults.failRenders = true;
    else if (name === 'fail-first-attempt') faults.failFirstAttempt = true;
    else if (name === 'oom-renders') faults.oomRenders = true;
    else if (name === 'render-delay-ms' && count !== undefined) faults.renderDelayMs = count;
    else if (name === 'die-after-upload' && count) faults.dieAfterUpload = count;
    else throw new Error(`NIGHTSHIFT_FAULTS: unknown fault "${part}"`);
  }
  return faults;
}

/** Each backend wrapped so that its renders are delayed or fail as `faults` says. */
export function withRenderFaults(backends: Map<string, Backend>, faults: Faults): Map<string, Backend> {
  const renderFaults = faults.failRenders || faults.failFirstAttempt || faults.oomRenders || faults.renderDelayMs > 0;
  if (!renderFaults) return backends;
  return new Map([...backends].map(([name, b]) => [name, faultyBackend(b, faults)]));
}

function faultyBackend(inner: Backend, faults: Faults): Backend {
  return {
    name: inner.name,
    models: inner.models,
    ...(inner.close ? { close: () => inner.close!() } : {}),
    async render(req, onProgress, signal) {
      if (faults.renderDelayMs) {
        await sleep(faults.renderDelayMs, signal);
        if (signal.aborted) throw new DOMException('aborted', 'AbortError');
      }
      if (faults.failRenders) throw new RenderFailure('injected fault: this node fails every render', 'NIGHTSHIFT_FAULTS=fail-renders');
      if (faults.oomRenders) throw new RenderFailure('RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)', 'NIGHTSHIFT_FAULTS=oom-renders', true);
      if (faults.failFirstAttempt && (req.attempt ?? 1) <= 1) throw new RenderFailure('injected fault: first attempt fails', 'NIGHTSHIFT_FAULTS=fail-first-attempt');
      return inner.render(req, onProgress, signal);
    },
  };
}

type NodeStorage = Pick<Storage, 'put' | 'exists' | 'get'>;

/** Storage that kills this process after its Nth image upload, when `faults` asks for it. */
export function withStorageFaults(storage: NodeStorage, faults: Faults, die: () => void = () => process.kill(process.pid, 'SIGKILL')): NodeStorage {
  if (!faults.dieAfterUpload) return storage;
  let images = 0;
  return {
    get: (key) => storage.get(key),
    exists: (key) => storage.exists(key),
    async put(key, body, contentType, meta) {
      await storage.put(key, body, contentType, meta);
      if (key.startsWith('images/') && ++images === faults.dieAfterUpload) die();
    },
  };
}
