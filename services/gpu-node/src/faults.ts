/**
 * Fault injection for the fault-tolerance tests, from NIGHTSHIFT_FAULTS:
 *   fail-renders        every render fails (a node whose backend is broken)
 *   render-delay-ms=N   each render takes N ms longer (long enough to interrupt)
 * Unset in production; a node with faults says so loudly in its log.
 */
export interface Faults {
  failRenders: boolean;
  renderDelayMs: number;
}

export function parseFaults(spec: string | undefined): Faults {
  const faults: Faults = { failRenders: false, renderDelayMs: 0 };
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split('=');
    if (name === 'fail-renders') faults.failRenders = true;
    else if (name === 'render-delay-ms' && /^\d+$/.test(value ?? '')) faults.renderDelayMs = Number(value);
    else throw new Error(`NIGHTSHIFT_FAULTS: unknown fault "${part}"`);
  }
  return faults;
}

export const noFaults = (f: Faults) => !f.failRenders && f.renderDelayMs === 0;
