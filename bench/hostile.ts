/**
 * What a hostile spec costs the coordinator's expansion, before and after
 * the bounds: time and peak RSS of each case in a fresh process, as ratios
 * against an ordinary 100-job sweep.
 *   node --import tsx bench/hostile.ts
 * "before" cases run the same code with the bounds lifted (and, for the
 * clean-up, the regexes this replaced), so they show what one request cost.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expandSweep, parseSpec, tidyPrompt, tidyPromptByRegex as regexTidy } from '@nightshift/sweep';

const UNBOUNDED = { maxJobs: 1_000_000, maxPromptChars: Number.MAX_SAFE_INTEGER, maxSweepChars: Number.MAX_SAFE_INTEGER };
const ordinary = { prompts: ['a red circle', 'a blue square'], axes: { style: ['', 'watercolor', 'ink', 'oil', 'pastel'] }, seeds: { count: 10 } };
const bomb = { prompts: ['x'.repeat(1_990)], template: '{prompt}'.repeat(240), axes: { style: Array.from({ length: 1_000 }, (_, i) => `s${i}`) }, seeds: { count: 1 } };
const spaces = { prompts: [`a${' '.repeat(1_990)}b`], axes: { pad: Array.from({ length: 1_000 }, (_, i) => `${' '.repeat(1_990)},${i}`) }, seeds: { count: 1 } };

const CASES: Record<string, () => unknown> = {
  ordinary: () => expandSweep(parseSpec(ordinary), UNBOUNDED),
  'bomb-before': () => expandSweep(parseSpec(bomb), UNBOUNDED),
  'bomb-after': () => {
    try {
      return expandSweep(parseSpec(bomb), {});
    } catch (err) {
      return String(err).length;
    }
  },
  // The whitespace input's filled-in prompts, cleaned by the old regexes and by the linear pass.
  'spaces-before': () => parseSpec(spaces).axes.pad!.map((v) => regexTidy(`a${' '.repeat(1_990)}b, ${v}`)),
  'spaces-after': () => parseSpec(spaces).axes.pad!.map((v) => tidyPrompt(`a${' '.repeat(1_990)}b, ${v}`)),
  'megabyte-after': () => tidyPrompt(`a${' '.repeat(500_000)},${' , '.repeat(150_000)}b${' '.repeat(200_000)}`),
};

const which = process.argv[2];
if (which) {
  const run = CASES[which]!;
  const rssBefore = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  run();
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ ms, peakRssMb: process.resourceUsage().maxRSS / 1024, grewMb: (process.resourceUsage().maxRSS - rssBefore) / 1024 }));
} else {
  const self = fileURLToPath(import.meta.url);
  const measure = (name: string) => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', self, name], { encoding: 'utf8' }).trim().split('\n').at(-1)!) as { ms: number; peakRssMb: number; grewMb: number };
  const results = Object.fromEntries(Object.keys(CASES).map((name) => [name, measure(name)]));
  const base = results.ordinary!;
  for (const [name, r] of Object.entries(results)) console.log(`${name.padEnd(16)} ${r.ms.toFixed(1).padStart(9)} ms  peak RSS ${r.peakRssMb.toFixed(0).padStart(5)} MB  (×${(r.ms / base.ms).toFixed(1)} time of an ordinary 100-job sweep)`);
  console.log(
    JSON.stringify({
      bench: 'hostile',
      ordinaryMs: +base.ms.toFixed(2),
      cases: Object.fromEntries(Object.entries(results).map(([n, r]) => [n, { ms: +r.ms.toFixed(2), peakRssMb: +r.peakRssMb.toFixed(1), timeRatio: +(r.ms / base.ms).toFixed(2) }])),
    }),
  );
}
