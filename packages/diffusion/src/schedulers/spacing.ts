// Which training timesteps an N-step run visits ("Common Diffusion Noise
// Schedules and Sample Steps are Flawed", Lin et al. 2023, table 2), as
// diffusers' set_timesteps builds them with numpy (np.round is half-to-even).
//   linspace: linspace(0, T−1, N) reversed
//   leading:  (T//N)·k for k = N−1 … 0, plus steps_offset
//   trailing: round(T − k·T/N) − 1 for k = 0 … N−1
import type { TimestepSpacing } from './config.js';

/** numpy.round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.linspace(0, last, n) in float64, highest first. */
export function linspaceDescending(last: number, n: number): number[] {
  if (n === 1) return [0];
  const step = last / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? last : i * step)).reverse();
}

export function leadingTimesteps(stepRatio: number, n: number, stepsOffset: number): number[] {
  return Array.from({ length: n }, (_, k) => (n - 1 - k) * stepRatio + stepsOffset);
}

export function trailingTimesteps(numTrain: number, n: number): number[] {
  const ratio = numTrain / n;
  return Array.from({ length: n }, (_, k) => roundHalfEven(numTrain - k * ratio) - 1);
}

/** Integer timesteps for the DDIM-style schedulers (DDIM rounds the linspace). */
export function discreteTimesteps(spacing: TimestepSpacing, numTrain: number, n: number, stepsOffset: number): number[] {
  switch (spacing) {
    case 'linspace':
      return linspaceDescending(numTrain - 1, n).map(roundHalfEven);
    case 'leading':
      return leadingTimesteps(Math.floor(numTrain / n), n, stepsOffset);
    case 'trailing':
      return trailingTimesteps(numTrain, n);
  }
}
