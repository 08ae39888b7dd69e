/**
 * Fault injection for the fault-tolerance tests, from NIGHTSHIFT_FAULTS:
 *   fail-renders        every render fails (a node whose backend is broken)
 *   fail-first-attempt  a job's first attempt fails, retries succeed (a flaky node)
 *   oom-renders         every render fails with "CUDA out of memory" (a card too small)
 *   render-delay-ms=N   each render takes N ms longer (long enough to interrupt)
 * Unset in production; a node with faults says so loudly in its log.
 */
export interface Faults {
  failRenders: boolean;
  failFirstAttempt: boolean;
  oomRenders: boolean;
  renderDelayMs: number;
}

export function parseFaults(spec: string | undefined): Faults {
  const faults: Faults = { failRenders: false, failFirstAttempt: false, oomRenders: false, renderDelayMs: 0 };
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split('=');
    if (name === 'fail-renders') faults.failRenders = true;
    else if (name === 'fail-first-attempt') faults.failFirstAttempt = true;
    else if (name === 'oom-renders') faults.oomRenders = true;
    else if (name === 'render-delay-ms' && /^\d+$/.test(value ?? '')) faults.renderDelayMs = Number(value);
    else throw new Error(`NIGHTSHIFT_FAULTS: unknown fault "${part}"`);
  }
  return faults;
}

export const noFaults = (f: Faults) => !f.failRenders && !f.failFirstAttempt && !f.oomRenders && f.renderDelayMs === 0;
